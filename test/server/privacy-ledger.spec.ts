import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { epsilonOfSteps } from '../../privacy/accountant/index.js';
import { startCoordinator, openStateStore, type RoundEventRecord } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { runDevices, smallProgram, TOKEN } from './fixtures.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');
/** The coordinator with a SIGKILL wired into its runners' afterLedger hook (test-only). */
const CRASHING = join(dirname(fileURLToPath(import.meta.url)), 'crash-coordinator.js');
const dp = { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1.0, delta: 1e-5, population: 2 };

const devicesRun = (address: string, programId: string, dir: string, n: number, maxRounds?: number, attempts = 8) =>
  runDevices({ address, programId, dir, ids: Array.from({ length: n }, (_, i) => i), options: () => ({ maxRounds, maxWaitMs: 200, retry: { attempts, baseMs: 100 } }) });

describe('server: the privacy ledger and budget', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-ledger-'));
  // two devices, cohort 2, population 2: q = 1, so each round costs the Gaussian mechanism at z = 1
  const one = epsilonOfSteps([{ q: 1, sigma: 1 }], 1e-5).epsilon;
  const two = epsilonOfSteps([{ q: 1, sigma: 1 }, { q: 1, sigma: 1 }], 1e-5).epsilon;

  it('spends ε per round, reports it in round events, and refuses the round that would exceed the budget, saying why', async () => {
    const budget = (one + two) / 2;
    const r = await startCoordinator({ dataDir: join(dir, 'budget'), port: 0, programs: [smallProgram('dp', { cohortSize: 2, minUpdates: 2, minContributors: 2, rounds: 3, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3 }, dp: { ...dp, epsilonBudget: budget } })] });
    try {
      const events: RoundEventRecord[] = [];
      r.coordinator.program('dp').runner.events$.subscribe((e) => events.push(e));
      const sums = await devicesRun(r.address, 'dp', dir, 2);
      for (const s of sums) {
        assert.equal(s.updatesAccepted, 1);
        assert.match(s.reason, /privacy budget: round 2 would bring ε to \d+\.\d+ > the budget/);
      }
      const done = events.filter((e) => e.state === 'COMPLETED');
      assert.equal(done.length, 1);
      assert.ok(Math.abs(done[0].epsilonSpent - one) < 1e-9, `${done[0].epsilonSpent} vs ${one}`);
      assert.equal(done[0].noiseMultiplier, 1);
      assert.equal(done[0].clipNorm, 0.5);
      const refused = events.find((e) => e.state === 'FAILED');
      assert.match(refused?.message ?? '', new RegExp(`> the budget ${budget}`));
      assert.equal((await r.coordinator.store.ledger('dp')).length, 1);
      assert.equal(r.coordinator.program('dp').runner.current().version, 1);
    } finally {
      await r.shutdown(500);
    }
  });

  it('writes the spend before the aggregate is released: kill -9 between them over-counts, never under-counts', async () => {
    const config = join(dir, 'crash.json');
    writeFileSync(config, JSON.stringify({ id: 'crash', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN, lora: { rank: 2, targets: ['wq'], seed: 1 }, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3 }, cohortSize: 2, minUpdates: 2, minContributors: 2, overSelect: 1, rounds: 1, retryDelayMs: 100, dp }));
    const data = join(dir, 'crash-data');
    const start = (crash: boolean) =>
      new Promise<{ address: string; exited: Promise<number | null>; kill: () => void }>((resolve, reject) => {
        const args = crash ? [CRASHING, config, data] : [CLI, 'coordinator', '--config', config, '--port', '0', '--data', data, '--insecure'];
        const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
        const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(code ?? (signal === 'SIGKILL' ? 137 : null))));
        createInterface({ input: child.stdout }).on('line', (line) => {
          const rec = JSON.parse(line) as { msg: string; address?: string };
          if (rec.msg === 'listening') resolve({ address: rec.address as string, exited, kill: () => child.kill('SIGTERM') });
        });
        child.once('exit', () => reject(new Error('coordinator exited before listening')));
      });
    // the coordinator dies right after writing the ledger, before aggregating: the devices' uploads fail
    const c1 = await start(true);
    await Promise.allSettled([devicesRun(c1.address, 'crash', dir, 2, 1, 2)]);
    assert.equal(await c1.exited, 137);
    let store = await openStateStore(join(data, 'coordinator.sqlite'));
    assert.equal((await store.ledger('crash')).length, 1, 'the spend of the crashed round is on disk');
    assert.equal((await store.latestVersion('crash')).version, 0, 'no aggregate was released');
    await store.close();
    // restarted: the crashed round is failed and run again; both spends count
    const c2 = await start(false);
    const sums = await devicesRun(c2.address, 'crash', dir, 2);
    assert.ok(sums.every((s) => /completed its 1 rounds/.test(s.reason)), JSON.stringify(sums));
    c2.kill();
    assert.equal(await c2.exited, 0);
    store = await openStateStore(join(data, 'coordinator.sqlite'));
    const ledger = await store.ledger('crash');
    const rounds = await store.rounds('crash');
    await store.close();
    assert.deepEqual(ledger.map((e) => [e.roundNumber, e.roundId]), [[1, 'crash.r1.a1'], [1, 'crash.r1.a2']]);
    assert.ok(Math.abs(ledger[1].epsilonAfter - two) < 1e-9);
    assert.deepEqual(rounds.map((x) => [x.roundId, x.state]), [['crash.r1.a1', 'failed'], ['crash.r1.a2', 'completed']]);
    assert.ok(Math.abs(rounds[1].epsilonSpent - two) < 1e-9);
  });

  it('adaptive clipping moves C each round by the devices’ clipped reports: C ← C·exp(−η(b̄ − γ))', async () => {
    const r = await startCoordinator({
      dataDir: join(dir, 'adaptive'),
      port: 0,
      programs: [smallProgram('adapt', { cohortSize: 3, minUpdates: 3, rounds: 3, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2 }, dp: { clipNorm: 0.05, adaptiveClip: { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 0 } } })],
    });
    try {
      const events: RoundEventRecord[] = [];
      r.coordinator.program('adapt').runner.events$.subscribe((e) => events.push(e));
      const reports = new Map<string, boolean[]>();
      await runDevices({
        address: r.address,
        programId: 'adapt',
        dir,
        ids: [0, 1, 2],
        watch: (d) => d.progress$.subscribe((e) => e.kind === 'uploaded' && reports.set(e.roundId, [...(reports.get(e.roundId) ?? []), !e.clipped])),
      });
      const done = events.filter((e) => e.state === 'COMPLETED');
      assert.equal(done.length, 3);
      let c = 0.05;
      for (const e of done) {
        assert.ok(Math.abs(e.clipNorm - c) < 1e-12, `round ${e.roundNumber}: C ${e.clipNorm} vs ${c}`);
        const b = reports.get(e.roundId) as boolean[];
        const bBar = b.filter(Boolean).length / b.length;
        c *= Math.exp(-0.2 * (bBar - 0.5));
      }
      assert.notEqual(done[0].clipNorm, done[2].clipNorm);
    } finally {
      await r.shutdown(500);
    }
  });
});
