import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { startCoordinator, startDashboard, type RunningCoordinator, type RunningDashboard } from '../../../server/index.js';
import { runDevices, smallProgram } from '../fixtures.js';

/** docs/ of the project (the spec runs from dist/test/server/dashboard/). */
const DOCS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'docs');
const CHROMIUM = '/usr/bin/chromium';
const ADMIN = 'dashboard-admin-token-0123';

describe('dashboard in a real browser (Debian chromium via playwright-core)', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-dash-'));
  let running: RunningCoordinator;
  let dash: RunningDashboard;
  let browser: Browser;

  before(async function () {
    try {
      statSync(CHROMIUM);
    } catch {
      throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does)`);
    }
    running = await startCoordinator({
      dataDir: join(dir, 'coord'),
      port: 0,
      programs: [smallProgram('oz', { dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1.2, population: 3, delta: 1e-5, epsilonBudget: 10 } })],
    });
    dash = await startDashboard({ coordinator: running.coordinator, port: 0, adminToken: ADMIN, refreshMs: 300 });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'] });
  });
  after(async () => {
    await browser?.close();
    await dash?.close();
    await running?.shutdown(1000);
  });

  it('follows a federation live (round rows, the ε chart, devices, releases), takes admin actions with the token, and loads nothing from elsewhere', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(dash.url);
    await page.waitForSelector('[data-conn="live"]');
    await page.waitForSelector('[data-program="oz"][data-status="running"]');
    // before any round: no chart point, the one signed release of version 0, no device
    assert.equal(await page.locator('svg[data-chart="epsilon"] circle.point').count(), 0);
    assert.equal(await page.locator('[data-program="oz"] tr[data-release]').count(), 1);
    assert.equal(await page.locator('[data-action]').count(), 0, 'read-only without the token');

    // admin actions from the page, with the token
    await page.fill('#token', ADMIN);
    await page.click('#unlock');
    await page.click('[data-program="oz"] button[data-action="pause"]');
    await page.waitForSelector('[data-program="oz"][data-status="paused"]');
    await page.click('[data-program="oz"] button[data-action="resume"]');
    await page.waitForSelector('[data-program="oz"][data-status="running"]');

    // a federation of three real devices over loopback; the page updates as its rounds go
    const fleet = runDevices({ address: running.address, programId: 'oz', dir, ids: [0, 1, 2], options: (i) => ({ label: `reader-${i}` }) });
    await page.waitForSelector('[data-program="oz"] tr[data-round-state="COMPLETED"]', { timeout: 90_000 });
    await page.waitForSelector('svg[data-chart="epsilon"] circle.point', { timeout: 30_000 });
    const summaries = await fleet;
    assert.ok(summaries.every((s) => s.updatesAccepted === 2), JSON.stringify(summaries));
    await page.waitForSelector('svg[data-chart="epsilon"][data-points="2"]');
    await page.waitForSelector('[data-program="oz"][data-status="completed"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-program="oz"] tr[data-release]').length === 3);
    await page.waitForFunction(() => document.querySelectorAll('[data-program="oz"] tr[data-device]').length === 3);

    // the chart's points are the privacy ledger's ε after each round (written by the accountant before release)
    const points = await page.$$eval('svg[data-chart="epsilon"] circle.point', (cs) => cs.map((c) => [Number(c.getAttribute('data-round')), Number(c.getAttribute('data-value'))]));
    const ledger = await running.coordinator.store.ledger('oz');
    assert.deepEqual(points.map(([r]) => r), [1, 2]);
    for (const [r, eps] of points) assert.ok(Math.abs(eps - (ledger.find((e) => e.roundNumber === r)?.epsilonAfter ?? NaN)) < 1e-9, `round ${r}: chart ${eps}, ledger ${JSON.stringify(ledger)}`);
    assert.ok(points[1][1] > points[0][1] && points[0][1] > 0, 'ε grows round by round');
    const rows = await page.$$eval('[data-program="oz"] tr[data-round-state="COMPLETED"]', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent)));
    assert.deepEqual(rows.sort(), [['1', 'COMPLETED', '3', '3'], ['2', 'COMPLETED', '3', '3']]);
    const labels = await page.$$eval('[data-program="oz"] tr[data-device] td:nth-child(2)', (tds) => tds.map((td) => td.textContent).sort());
    assert.deepEqual(labels, ['reader-0', 'reader-1', 'reader-2']);

    assert.deepEqual(errors, []);
    const origin = new URL(dash.url).origin;
    assert.deepEqual(requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:')), [], 'no request leaves the dashboard');
    mkdirSync(DOCS, { recursive: true });
    // the README's screenshot is refreshed only on request (FEDTUNE_SCREENSHOT=1); else a temp file
    const shot = process.env.FEDTUNE_SCREENSHOT === '1' ? join(DOCS, 'dashboard.png') : join(mkdtempSync(join(tmpdir(), 'fedtune-shot-')), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
  });
});
