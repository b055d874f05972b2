// The page as `spreadguard serve --ui` serves it on the admin port: from a cluster with known
// pods (a fake API server), and with `--dev` (the bundled example workloads).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, shot } from '../lib/browser.js';
import { startFakeApiServer } from '../lib/fake-apiserver.js';
import { clusterObjects, EXPECTED, AT_ZERO } from '../lib/cluster-fixture.js';
import { BIN, run, startServe, certificates, tempDir, waitFor } from '../lib/spreadguard.js';
import { ready, row, zoneCells, rowNames, countLine, assertNoProblems } from '../lib/matrix.js';

let browser, api, serve, kubeconfig;

before(async () => {
  browser = await launch();
  api = await startFakeApiServer(clusterObjects());
  const dir = tempDir();
  const { cert, key } = certificates(dir);
  kubeconfig = api.kubeconfig(dir);
  serve = await startServe(['--tls-cert', cert, '--tls-key', key, '--kubeconfig', kubeconfig, '--ui-interval', '2s']);
  // The first scan has finished (before it the page says so and retries; Chromium would log
  // the 503 as a console error).
  await waitFor(serve.admin + '/api/posture');
});

after(async () => {
  await browser?.close();
  await serve?.stop();
  await api?.close();
});

test('serve --ui: the page shows the exact ready pods per zone of a known cluster', async () => {
  const { page, problems, context } = await openPage(browser);
  await page.goto(serve.admin + '/');
  await ready(page);
  assert.match(await countLine(page), /^Showing 6 workloads of 6 in 2 namespaces/);
  for (const [nsName, want] of Object.entries(EXPECTED)) {
    const cells = await zoneCells(page, nsName);
    assert.deepEqual(cells.map((c) => parseInt(c, 10)), want.zones, nsName);
    const text = await row(page, nsName).innerText();
    assert.ok(text.includes(want.loss) && text.includes(want.left), `${nsName}: ${text}`);
  }
  // Sorted by risk: everything that loses all to one zone comes before what loses some.
  const names = await rowNames(page);
  const last = names.findLastIndex((n) => /api|cache|report|debug/.test(n));
  const first = names.findIndex((n) => /web|worker/.test(n));
  assert.ok(last < first, names.join(', '));
  assert.match(await page.locator('#summary').innerText(), /ready pods read from the cluster/);
  await page.screenshot({ path: shot('serve-cluster.png'), fullPage: true });
  assertNoProblems(problems);
  await context.close();
});

test('serve --ui: a zone panel lists what its loss takes, by mouse and by keyboard', async () => {
  const { page, problems, context } = await openPage(browser);
  await page.goto(serve.admin + '/');
  await ready(page);
  for (const [zone, names] of Object.entries(AT_ZERO)) {
    await page.locator(`#matrix-head button[data-zone="${zone}"]`).click();
    const panel = page.locator('#zone-panel');
    await panel.waitFor({ state: 'visible' });
    const text = await panel.innerText();
    assert.match(text, new RegExp(`If zone ${zone} is lost`));
    assert.match(text, new RegExp(`At zero: ${names.length} lose every ready pod`));
    for (const n of names) assert.ok(text.includes(n), `${zone}: ${n} in\n${text}`);
    assert.equal(await page.locator(`#matrix-head button[data-zone="${zone}"]`).getAttribute('aria-expanded'), 'true');
  }
  await page.locator('#matrix-head button[data-zone="zone-a"]').click();
  await page.screenshot({ path: shot('serve-zone-panel.png'), fullPage: true });
  await page.locator('#zone-close').click();
  assert.ok(await page.locator('#zone-panel').isHidden());

  // Keyboard only: Tab to the first zone header, Enter opens its panel, Escape closes it
  // and gives the focus back to the header.
  await page.locator('#f-group').focus();
  let focused = '';
  for (let i = 0; i < 10 && focused !== 'zone-a'; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => document.activeElement?.dataset?.zone || '');
  }
  assert.equal(focused, 'zone-a', 'the zone header is reachable by Tab');
  await page.keyboard.press('Enter');
  await page.locator('#zone-panel').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'zone-panel-h');
  assert.match(await page.locator('#zone-panel').innerText(), /Pod shop\/debug/);
  await page.keyboard.press('Escape');
  assert.ok(await page.locator('#zone-panel').isHidden());
  assert.equal(await page.evaluate(() => document.activeElement?.dataset?.zone), 'zone-a');
  assertNoProblems(problems);
  await context.close();
});

test('serve --ui: /api/posture is the document the page shows, and audit --cluster writes the same document', async () => {
  const doc = JSON.parse(await waitFor(serve.admin + '/api/posture'));
  assert.equal(doc.scan.workloads, 'cluster');
  assert.equal(doc.scan.pods, true);
  assert.deepEqual(Object.keys(doc.zoneLoss), ['zone-a', 'zone-b', 'zone-c']);
  // The same cluster through `audit --cluster -o json`: the same document but for `scan`.
  // (Not spawnSync: the fake API server answers from this very process.)
  const audit = await run(BIN, ['audit', '--cluster', '--kubeconfig', kubeconfig, '-o', 'json']);
  assert.equal(audit.status, 1, audit.stderr); // batch/report is denied (HA001)
  const { scan: _scan, ...served } = doc;
  assert.deepEqual(served, JSON.parse(audit.stdout));
  const page = await fetch(serve.admin + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy'), /default-src 'none'/);
  const html = await page.text();
  assert.ok(!/https?:\/\//.test(html), 'the page names no other origin');
});

test('serve --dev --ui: the bundled example workloads, predicted only', async () => {
  const dev = await startServe(['--dev', '--ui-interval', '60s']);
  try {
    // Every workload of the served document (its HPAs and PDBs are listed apart).
    const doc = JSON.parse(await waitFor(dev.admin + '/api/posture'));
    const { page, problems, context } = await openPage(browser);
    await page.goto(dev.admin + '/');
    await ready(page);
    const workloads = doc.results.filter((r) => !['HorizontalPodAutoscaler', 'PodDisruptionBudget'].includes(r.kind)).length;
    assert.ok(workloads >= 20, `${workloads} example workloads`);
    assert.match(await countLine(page), new RegExp(`^Showing ${workloads} workloads of ${workloads} `));
    assert.ok(await page.locator('#others').isVisible(), 'the examples have HPAs and PDBs');
    assert.match(await page.locator('#source').innerText(), /scanned .* from manifest files/);
    assert.match(await page.locator('#summary').innerText(), /pods not read/);
    await page.screenshot({ path: shot('serve-dev.png'), fullPage: false });
    assertNoProblems(problems);
    await context.close();
  } finally {
    await dev.stop();
  }
});

test('serve --ui without RBAC for pods: the predicted placement only, and the page says why', async () => {
  const noPods = await startFakeApiServer(clusterObjects(), { forbid: ['/api/v1/pods'] });
  const dir = tempDir();
  const { cert, key } = certificates(dir);
  const server = await startServe(['--tls-cert', cert, '--tls-key', key, '--kubeconfig', noPods.kubeconfig(dir), '--ui-interval', '60s']);
  try {
    const doc = JSON.parse(await waitFor(server.admin + '/api/posture'));
    assert.equal(doc.scan.pods, false);
    assert.match(doc.scan.error, /running pods not read/);
    assert.ok(doc.results.every((r) => !r.actual) && !doc.zoneLoss, 'no actual placement');
    const { page, problems, context } = await openPage(browser);
    await page.goto(server.admin + '/');
    await ready(page);
    const summary = await page.locator('#summary').innerText();
    assert.match(summary, /predicted \(no running pods read\)/);
    assert.match(summary, /Scan problem\s+running pods not read/);
    // The Deployments and the StatefulSet are there, with their predicted replicas.
    assert.match(await countLine(page), /^Showing 5 workloads of 5 in 2 namespaces/);
    assert.deepEqual((await zoneCells(page, 'shop/web')).map((c) => c.replace(/\s*◆$/, '')), ['≈1', '≈1', '≈1']);
    assertNoProblems(problems);
    await context.close();
  } finally {
    await server.stop();
    await noPods.close();
  }
});
