// Just enough of a Kubernetes API server for `spreadguard serve --ui` in cluster mode, over
// plain HTTP on 127.0.0.1: lists (one page each, with a resourceVersion) of the resources
// spreadguard reads, and watches that stay open without events (the caches sync on the list).
// What a real API server does is tested on the real control plane (tests/e2e_*.rs); this
// fake only gives the page a cluster with known pods.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const PATHS = {
  '/api/v1/nodes': 'Node',
  '/api/v1/namespaces': 'Namespace',
  '/api/v1/pods': 'Pod',
  '/apis/apps/v1/deployments': 'Deployment',
  '/apis/apps/v1/statefulsets': 'StatefulSet',
  '/apis/apps/v1/replicasets': 'ReplicaSet',
  '/apis/autoscaling/v2/horizontalpodautoscalers': 'HorizontalPodAutoscaler',
  '/apis/policy/v1/poddisruptionbudgets': 'PodDisruptionBudget',
  // Storage, which every cluster serves (spreadguard's caches and audit --cluster read it).
  '/apis/storage.k8s.io/v1/storageclasses': 'StorageClass',
  '/api/v1/persistentvolumeclaims': 'PersistentVolumeClaim',
  '/api/v1/persistentvolumes': 'PersistentVolume',
};

/// Starts the fake with `objects` (each with its `kind`); `forbid` lists paths answered 403 (as
/// for a service account without RBAC for them). Resolves to {url, kubeconfig(dir), close}.
export async function startFakeApiServer(objects, { forbid = [] } = {}) {
  const byKind = new Map();
  for (const o of objects) {
    if (!byKind.has(o.kind)) byKind.set(o.kind, []);
    byKind.get(o.kind).push(o);
  }
  const watches = new Set();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const kind = PATHS[url.pathname];
    if (forbid.includes(url.pathname)) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403, message: `${url.pathname} is forbidden` }));
      return;
    }
    if (!kind || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${url.pathname} not found` }));
      return;
    }
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      watches.add(res);
      res.on('close', () => watches.delete(res));
      return;
    }
    const items = (byKind.get(kind) || []).map(({ kind: _k, apiVersion: _a, ...rest }) => rest);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: kind + 'List', apiVersion: 'v1', metadata: { resourceVersion: '100' }, items }));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    kubeconfig(dir) {
      const file = path.join(dir, 'kubeconfig');
      fs.writeFileSync(file, `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: '${url}'}\n` +
        `users:\n- name: me\n  user: {}\ncontexts:\n- name: fake\n  context: {cluster: fake, user: me}\ncurrent-context: fake\n`);
      return file;
    },
    async close() {
      for (const w of watches) w.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
