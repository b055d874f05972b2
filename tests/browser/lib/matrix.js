// Reading the posture page as a person would: rows by their workload, cells by their text.
import assert from 'node:assert/strict';

export async function ready(page) {
  await page.waitForSelector('body[data-ready=true]', { timeout: 60000 });
}

/// The matrix row of `ns/name` (a locator).
export function row(page, nsName) {
  return page.locator(`#matrix-body tr.row:has(th[title$=" ${nsName}"])`);
}

/// The row's zone cells, as text.
export async function zoneCells(page, nsName) {
  return row(page, nsName).locator('td.n').allInnerTexts();
}

/// Names of the workload rows in display order ("kind ns/name").
export async function rowNames(page) {
  return page.locator('#matrix-body tr.row th').evaluateAll((ths) => ths.map((t) => t.title));
}

export async function countLine(page) {
  return (await page.locator('#count').innerText()).trim();
}

export function assertNoProblems(problems) {
  assert.deepEqual(problems, [], 'no page errors, console errors or requests to other origins');
}
