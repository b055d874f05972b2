// A posture document of N workloads, shaped as `audit --cluster -o json` writes it (ready pods
// per zone, zone loss, findings, patches), with the predicted placement and budgets that
// later reports add, so that the page renders every column at scale.
const ZONE_KEY = 'topology.kubernetes.io/zone';

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function patch(app) {
  const selector = { matchLabels: { app } };
  return [
    {
      op: 'add', path: '/spec/template/spec/topologySpreadConstraints',
      value: [
        { maxSkew: 1, topologyKey: ZONE_KEY, whenUnsatisfiable: 'ScheduleAnyway', labelSelector: selector, matchLabelKeys: ['pod-template-hash'], nodeTaintsPolicy: 'Honor' },
        { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: selector, matchLabelKeys: ['pod-template-hash'], nodeTaintsPolicy: 'Honor' },
      ],
    },
    {
      op: 'add', path: '/spec/template/spec/affinity',
      value: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: ZONE_KEY, labelSelector: selector } }] } },
    },
    { op: 'add', path: '/spec/template/metadata/annotations', value: { 'spreadguard.io/injected': 'zone-spread,node-spread,zone-anti-affinity' } },
  ];
}

function worst(zones) {
  let best = null;
  let total = 0;
  for (const [z, n] of Object.entries(zones)) {
    total += n;
    if (!best || n > best[1]) best = [z, n];
  }
  return total ? { zone: best[0], lost: best[1], left: total - best[1] } : undefined;
}

export function generate(n, { zones: zoneCount = 3, seed = 42 } = {}) {
  const random = rng(seed);
  const zones = Array.from({ length: zoneCount }, (_, i) => `eu-west-1${String.fromCharCode(97 + i)}`);
  const results = [];
  const summary = { documents: n, workloads: n, allowed: 0, denied: 0, patched: 0, findings: {} };
  const zoneLoss = Object.fromEntries(zones.map((z) => [z, { workloads: 0, readyPods: 0, loseAll: [] }]));
  for (let i = 0; i < n; i++) {
    const ns = `team-${String(i % 97).padStart(2, '0')}`;
    const name = `service-${i}`;
    const replicas = 1 + Math.floor(random() * 6);
    const spread = random() < 0.6;
    const ready = {};
    for (const z of zones) ready[z] = 0;
    for (let r = 0; r < replicas; r++) {
      const z = spread ? zones[r % zones.length] : zones[Math.floor(random() * (random() < 0.5 ? 1 : zones.length))];
      ready[z] += 1;
    }
    const predicted = {};
    zones.forEach((z, k) => { predicted[z] = Math.floor(replicas / zones.length) + (k < replicas % zones.length ? 1 : 0); });
    const findings = [];
    if (replicas < 2) findings.push({ rule: 'HA001', severity: 'deny', message: `1 replica, policy requires at least 2: losing its node or zone takes the workload down` });
    if (!spread && replicas > 1) findings.push({ rule: 'HA022', severity: 'warn', message: `running pods are ${Object.entries(ready).map(([z, c]) => `${c} in ${z}`).join(', ')} while the constraints promise a spread; a rollout would re-spread them` });
    if (random() < 0.1) findings.push({ rule: 'HA008', severity: 'warn', message: 'topologySpreadConstraints[0] uses the legacy failure-domain.beta.kubernetes.io/zone' });
    const denied = findings.some((f) => f.severity === 'deny');
    for (const f of findings) summary.findings[f.severity] = (summary.findings[f.severity] || 0) + 1;
    if (denied) summary.denied++; else summary.allowed++;
    const p = spread ? [] : patch(name);
    if (p.length) summary.patched++;
    const total = Object.values(ready).reduce((a, b) => a + b, 0);
    for (const z of zones) {
      if (!ready[z]) continue;
      zoneLoss[z].workloads++;
      zoneLoss[z].readyPods += ready[z];
      if (ready[z] === total) zoneLoss[z].loseAll.push({ kind: 'Deployment', namespace: ns, name, ready: total });
    }
    results.push({
      source: `deployments/${ns}/${name}`, kind: 'Deployment', namespace: ns, name, mode: 'enforce',
      decision: denied ? 'deny' : 'allow', findings,
      injected: p.length ? ['zone-spread', 'node-spread', 'zone-anti-affinity'] : [], patch: p,
      outcome: { allowed: !denied, patched: p.length > 0, warnings: findings.filter((f) => f.severity === 'warn').map((f) => `${f.rule}: ${f.message}`) },
      actual: { zones: ready, ready: total, unzoned: 0, notReady: 0, unscheduled: 0, worstZoneLoss: worst(ready) },
      placement: { zones: predicted, worstZoneLoss: worst(predicted), guaranteed: false },
      autoscaler: null,
      disruptionBudgets: replicas > 2 ? [{ name: `${name}-pdb`, maxUnavailable: 1, allowedUnavailable: 1 }] : [],
    });
  }
  return {
    topology: { source: 'nodes', zoneKey: ZONE_KEY, zones: Object.fromEntries(zones.map((z) => [z, 40])), unzonedNodes: 0, nodes: 40 * zones.length },
    results,
    summary,
    zoneLoss,
  };
}

/// The page of an `audit -o html` file with its data replaced by `doc`.
export function withData(html, doc) {
  const open = '<script id="posture-data" type="application/json">';
  const start = html.indexOf(open) + open.length;
  const end = html.indexOf('</script>', start);
  if (start < open.length || end < 0) throw new Error('no data block in the page');
  const json = JSON.stringify(doc).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  return html.slice(0, start) + json + html.slice(end);
}
