// The page as `spreadguard audit -o html` writes it: one file, opened from disk, that reads
// nothing. Filtering, sorting and the detail, by mouse and by keyboard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launch, openPage, shot, ROOT } from '../lib/browser.js';
import { auditHtml } from '../lib/spreadguard.js';
import { ready, row, zoneCells, rowNames, countLine, assertNoProblems } from '../lib/matrix.js';

let browser, file;

before(async () => {
  browser = await launch();
  file = auditHtml(['--nodes', 'tests/fixtures/posture/nodes.yaml', 'tests/fixtures/posture/workloads/'],
    path.join(ROOT, 'target/browser/posture-fixture.html'));
});

after(async () => {
  await browser?.close();
});

async function open() {
  const opened = await openPage(browser);
  await opened.page.goto('file://' + file);
  await ready(opened.page);
  return opened;
}

test('audit -o html: the file shows the predicted replicas per zone of a known fixture', async () => {
  const { page, problems, context } = await open();
  assert.match(await countLine(page), /^Showing 11 workloads of 11 in 4 namespaces/);
  const cells = async (nsName) => (await zoneCells(page, nsName)).map((c) => c.replace(/\s*◆$/, ''));
  assert.deepEqual(await cells('shop/session-cache'), ['≈4', '≈0', '≈0']);
  assert.deepEqual(await cells('shop/checkout-api'), ['≈1', '≈0', '≈0']);
  assert.deepEqual(await cells('ml/image-embedder'), ['–', '≈2', '–']);
  assert.deepEqual(await cells('streaming/kafka'), ['≈3', '≈3', '≈2']);
  assert.match(await row(page, 'shop/session-cache').innerText(), /loses all: 0 of 4 left \(pred\.\)/);
  assert.match(await row(page, 'shop/payments').innerText(), /below budget: 2 of 3 left/);
  assert.match(await row(page, 'streaming/kafka').innerText(), /loses some: 5 of 8 left[\s\S]*deny\s+HA003/);
  assert.match(await page.locator('th[title$=" mailer"]').locator('..').innerText(), /unconstrained: may lose all 2/);
  assert.match(await row(page, 'shop/checkout-api').innerText(), /deny\s+HA001/);
  assert.match(await page.locator('#topology').innerText(), /eu-west-1b\s+3/);
  assert.match(await page.locator('#others').innerText(), /PodDisruptionBudget shop\/payments: ✖ deny HA013/);
  // The zone panel from the prediction.
  await page.locator('#matrix-head button[data-zone="eu-west-1a"]').click();
  const panel = await page.locator('#zone-panel').innerText();
  assert.match(panel, /As predicted/);
  assert.match(panel, /At zero: 2 would lose every replica/);
  assert.ok(panel.includes('Deployment shop/checkout-api') && panel.includes('Deployment shop/session-cache'), panel);
  assert.match(panel, /Below their disruption budget: 1[\s\S]*Deployment shop\/payments/);
  assert.match(panel, /1 workload unconstrained/);
  await page.screenshot({ path: shot('html-examples.png') });
  assertNoProblems(problems);
  await context.close();
});

test('filters by namespace, rule, severity and text', async () => {
  const { page, problems, context } = await open();
  await page.getByLabel('Namespace', { exact: true }).selectOption('shop');
  assert.match(await countLine(page), /^Showing 8 workloads of 11 in 1 namespace/);
  await page.getByLabel('Namespace', { exact: true }).selectOption('');
  await page.getByLabel('Worst severity').selectOption('deny');
  assert.match(await countLine(page), /^Showing 5 workloads of 11/);
  await page.getByLabel('Worst severity').selectOption('');
  await page.getByLabel('Rule').selectOption('HA008');
  assert.deepEqual(await rowNames(page), ['Deployment shop/catalog']);
  await page.getByLabel('Rule').selectOption('');
  // Keyboard: type into the text filter.
  await page.getByLabel('Text').focus();
  await page.keyboard.type('kafka');
  await page.waitForFunction(() => document.getElementById('count').textContent.startsWith('Showing 1 workload '));
  assert.deepEqual(await rowNames(page), ['StatefulSet streaming/kafka']);
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Backspace');
  await page.waitForFunction(() => document.getElementById('count').textContent.startsWith('Showing 11 '));
  assertNoProblems(problems);
  await context.close();
});

test('sorts by mouse and by keyboard', async () => {
  const { page, problems, context } = await open();
  await page.getByLabel('Group by namespace').uncheck();
  const byName = (names) => [...names].sort((a, b) => {
    const [ka, na] = a.split(' '), [kb, nb] = b.split(' ');
    const [nsa, xa] = na.includes('/') ? na.split('/') : ['', na];
    const [nsb, xb] = nb.includes('/') ? nb.split('/') : ['', nb];
    return nsa.localeCompare(nsb) || xa.localeCompare(xb) || ka.localeCompare(kb);
  });
  await page.locator('button[data-sort=name]').click();
  const asc = await rowNames(page);
  assert.deepEqual(asc, byName(asc), 'ascending by namespace and name');
  assert.equal(await page.locator('th:has(button[data-sort=name])').getAttribute('aria-sort'), 'ascending');
  // Keyboard: the focus stays on the header button; Enter reverses the order.
  assert.equal(await page.evaluate(() => document.activeElement.dataset.sort), 'name');
  await page.keyboard.press('Enter');
  assert.deepEqual(await rowNames(page), [...asc].reverse());
  assert.equal(await page.locator('th:has(button[data-sort=name])').getAttribute('aria-sort'), 'descending');
  // Worst finding: every deny before every warn before rows without one.
  for (let i = 0; i < 8 && (await page.evaluate(() => document.activeElement.dataset.sort)) !== 'finding'; i++) {
    await page.keyboard.press('Tab');
  }
  assert.equal(await page.evaluate(() => document.activeElement.dataset.sort), 'finding', 'reachable by Tab');
  await page.keyboard.press(' ');
  const sev = await page.locator('#matrix-body tr.row td:last-child').allInnerTexts();
  const rank = (t) => (t.includes('deny') ? 0 : t.includes('warn') ? 1 : t.includes('info') ? 2 : 3);
  assert.deepEqual(sev.map(rank), [...sev.map(rank)].sort((a, b) => a - b), sev.join('\n'));
  assertNoProblems(problems);
  await context.close();
});

test("a workload's detail shows its findings and its patch, by mouse and by keyboard", async () => {
  const { page, problems, context } = await open();
  await row(page, 'shop/checkout-api').click();
  const dialog = page.locator('#detail');
  await dialog.waitFor({ state: 'visible' });
  const text = await dialog.innerText();
  assert.match(text, /Deployment shop\/checkout-api/);
  assert.match(text, /deny\s+HA001\s+1 replica/);
  assert.match(await page.locator('#detail-patch').innerText(), /"path": "\/spec\/template\/spec\/topologySpreadConstraints"/);
  await page.screenshot({ path: shot('html-detail.png') });
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden' });
  assert.match(await page.evaluate(() => document.activeElement.querySelector('th')?.title || ''), /shop\/checkout-api/,
    'the focus returns to the row');

  // Keyboard only: the rows take arrow keys, Enter opens the detail of the focused one.
  await page.getByLabel('Namespace', { exact: true }).selectOption('shop');
  await page.getByLabel('Group by namespace').uncheck();
  await page.locator('button[data-sort=name]').click();
  await page.locator('#matrix-body tr.row[tabindex="0"]').focus();
  await page.keyboard.press('Home');
  const first = await page.evaluate(() => document.activeElement.querySelector('th').title);
  assert.equal(first, 'Deployment shop/cart');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  const third = await page.evaluate(() => document.activeElement.querySelector('th').title);
  assert.equal(third, 'Deployment shop/checkout-api');
  await page.keyboard.press('Enter');
  await dialog.waitFor({ state: 'visible' });
  assert.match(await dialog.innerText(), /HA001/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'detail-close');
  await page.keyboard.press('Enter'); // the focused Close button
  await dialog.waitFor({ state: 'hidden' });
  assertNoProblems(problems);
  await context.close();
});
