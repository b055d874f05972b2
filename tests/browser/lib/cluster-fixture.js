// A small cluster with known pods: three zones, two namespaces, workloads whose ready pods sit
// where the expectations below say. The page must show exactly these counts.
const ZONE = 'topology.kubernetes.io/zone';

function node(name, zone) {
  return { kind: 'Node', apiVersion: 'v1', metadata: { name, labels: { [ZONE]: zone, 'kubernetes.io/hostname': name } }, spec: {} };
}

function namespace(name) {
  return { kind: 'Namespace', apiVersion: 'v1', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } } };
}

function template(app) {
  return {
    metadata: { labels: { app } },
    spec: { containers: [{ name: app, image: `registry.example/${app}:1` }] },
  };
}

function deployment(ns, name, replicas) {
  return {
    kind: 'Deployment', apiVersion: 'apps/v1',
    metadata: { namespace: ns, name, uid: `uid-${ns}-${name}` },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: template(name) },
  };
}

function statefulSet(ns, name, replicas) {
  return {
    kind: 'StatefulSet', apiVersion: 'apps/v1',
    metadata: { namespace: ns, name, uid: `uid-${ns}-${name}` },
    spec: { replicas, serviceName: name, selector: { matchLabels: { app: name } }, template: template(name) },
  };
}

function replicaSet(ns, deployment, hash, replicas) {
  return {
    kind: 'ReplicaSet', apiVersion: 'apps/v1',
    metadata: {
      namespace: ns, name: `${deployment}-${hash}`,
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment, uid: `uid-${ns}-${deployment}`, controller: true }],
    },
    spec: { replicas, selector: { matchLabels: { app: deployment, 'pod-template-hash': hash } }, template: template(deployment) },
  };
}

let serial = 0;
function pod(ns, owner, nodeName, { ready = true, phase = 'Running' } = {}) {
  serial += 1;
  const [kind, name] = owner || [];
  return {
    kind: 'Pod', apiVersion: 'v1',
    metadata: {
      namespace: ns, name: `${name || 'bare'}-${serial}`, labels: { app: name || 'debug' },
      ownerReferences: owner ? [{ apiVersion: 'apps/v1', kind, name, uid: `uid-${name}`, controller: true }] : undefined,
    },
    spec: { nodeName, containers: [{ name: 'c', image: 'registry.example/c:1' }] },
    status: { phase, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

export function clusterObjects() {
  serial = 0;
  const rs = (d, h) => ['ReplicaSet', `${d}-${h}`];
  const bare = pod('shop', null, 'a-1');
  bare.metadata.name = 'debug';
  return [
    node('a-1', 'zone-a'), node('a-2', 'zone-a'), node('b-1', 'zone-b'), node('b-2', 'zone-b'), node('c-1', 'zone-c'),
    namespace('shop'), namespace('batch'),
    // web: one ready pod per zone
    deployment('shop', 'web', 3), replicaSet('shop', 'web', '7d9', 3),
    pod('shop', rs('web', '7d9'), 'a-1'), pod('shop', rs('web', '7d9'), 'b-1'), pod('shop', rs('web', '7d9'), 'c-1'),
    // api: every ready pod in zone-a
    deployment('shop', 'api', 3), replicaSet('shop', 'api', '5c4', 3),
    pod('shop', rs('api', '5c4'), 'a-1'), pod('shop', rs('api', '5c4'), 'a-2'), pod('shop', rs('api', '5c4'), 'a-2'),
    // cache: two ready in zone-b, one not ready in zone-c
    statefulSet('shop', 'cache', 3),
    pod('shop', ['StatefulSet', 'cache'], 'b-1'), pod('shop', ['StatefulSet', 'cache'], 'b-2'),
    pod('shop', ['StatefulSet', 'cache'], 'c-1', { ready: false }),
    // worker: 2 / 1 / 1 and one Pending
    deployment('shop', 'worker', 5), replicaSet('shop', 'worker', '9f1', 5),
    pod('shop', rs('worker', '9f1'), 'a-1'), pod('shop', rs('worker', '9f1'), 'a-2'), pod('shop', rs('worker', '9f1'), 'b-2'),
    pod('shop', rs('worker', '9f1'), 'c-1'), pod('shop', rs('worker', '9f1'), undefined, { ready: false, phase: 'Pending' }),
    // report: one replica (HA001), in zone-c
    deployment('batch', 'report', 1), replicaSet('batch', 'report', '1a2', 1),
    pod('batch', rs('report', '1a2'), 'c-1'),
    // a bare Pod in zone-a
    bare,
  ];
}

/// What the matrix must show: ready pods per zone, and the zone-loss text.
export const EXPECTED = {
  'shop/web': { zones: [1, 1, 1], loss: 'loses some', left: '2 of 3 left' },
  'shop/api': { zones: [3, 0, 0], loss: 'loses all', left: '0 of 3 left' },
  'shop/cache': { zones: [0, 2, 0], loss: 'loses all', left: '0 of 2 left' },
  'shop/worker': { zones: [2, 1, 1], loss: 'loses some', left: '2 of 4 left' },
  'batch/report': { zones: [0, 0, 1], loss: 'loses all', left: '0 of 1 left' },
  'shop/debug': { zones: [1, 0, 0], loss: 'loses all', left: '0 of 1 left' },
};

/// Per zone: the workloads at zero if it is lost.
export const AT_ZERO = {
  'zone-a': ['Deployment shop/api', 'Pod shop/debug'],
  'zone-b': ['StatefulSet shop/cache'],
  'zone-c': ['Deployment batch/report'],
};

/// A cluster of `n` Deployments (each with its ReplicaSet and 1 to 6 ready pods) in 97
/// namespaces over three zones: what `serve --ui` scans for the scale test.
export function largeCluster(n) {
  serial = 0;
  const objects = [];
  const zones = ['zone-a', 'zone-b', 'zone-c'];
  for (const z of zones) for (let k = 0; k < 4; k++) objects.push(node(`${z}-${k}`, z));
  const namespaces = new Set();
  for (let i = 0; i < n; i++) {
    const ns = `team-${String(i % 97).padStart(2, '0')}`;
    namespaces.add(ns);
    const name = `service-${i}`;
    const replicas = 1 + (i % 6);
    objects.push(deployment(ns, name, replicas), replicaSet(ns, name, 'h' + i, replicas));
    const spread = i % 5 !== 0;
    for (let r = 0; r < replicas; r++) {
      const z = spread ? r % 3 : 0;
      objects.push(pod(ns, ['ReplicaSet', `${name}-h${i}`], `${zones[z]}-${r % 4}`));
    }
  }
  for (const ns of namespaces) objects.push(namespace(ns));
  return objects;
}
