/**
 * Fast unit tests of a program's round runner: a real Coordinator over a temp SQLite store and
 * blob folder, no gRPC and no training — synthetic Float32Array updates go straight to the runner.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { filter } from 'rxjs/operators';
import { FedAvgStrategy } from '../../aggregators/index.js';
import { seededRng, nextGaussian } from '../../model/index.js';
import { Coordinator, programSpec, type RoundEventRecord, type WorkOrder } from '../../server/index.js';
import { epsilonOfSteps } from '../../privacy/accountant/index.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'fedtune-runner-'));
let n = 0;

/** A tiny program (rank 2 on wq) with fast timings; `over` replaces fields. */
function spec(over: Record<string, unknown> = {}) {
  return programSpec({
    id: 'p',
    base: MODEL.bin,
    tokenizer: MODEL.tok,
    enrolmentToken: TOKEN,
    lora: { rank: 2, targets: ['wq'], seed: 3 },
    training: { steps: 2, batchSize: 2, seqLen: 32 },
    cohortSize: 3,
    minUpdates: 2,
    minContributors: 2,
    overSelect: 1,
    rounds: 2,
    roundDeadlineMs: 60_000,
    retryDelayMs: 0,
    ...over,
  });
}

/** A coordinator over a fresh temp folder, with the program's runner started. */
async function coordinator(over: Record<string, unknown> = {}, rng = seededRng(1)) {
  const c = await Coordinator.open({ dataDir: join(dir, `c${++n}`), programs: [spec(over)], rng });
  return c;
}

/** Enrol `k` devices straight into the store; returns their ids. */
async function enrol(c: Coordinator, k: number, prefix = 'dev'): Promise<string[]> {
  return Promise.all(Array.from({ length: k }, async (_, i) => {
    const key = new Uint8Array(32);
    key[0] = i & 255;
    key[1] = i >> 8;
    key[2] = prefix.length;
    key[3] = prefix.charCodeAt(0);
    return (await c.store.enrollDevice({ id: `${prefix}-${i}`, programId: 'p', signPublicKey: key, boxPublicKey: key, label: '' })).id;
  }));
}

const nextEvent = (c: Coordinator, pred: (e: RoundEventRecord) => boolean) => firstValueFrom(c.program('p').runner.events$.pipe(filter(pred)));

/** A synthetic update of the program's flat length: value v everywhere, or from a function. */
function update(c: Coordinator, v: number | ((i: number) => number)): Float32Array {
  const len = c.program('p').flatLength;
  return Float32Array.from({ length: len }, (_, i) => (typeof v === 'number' ? v : v(i)));
}

function work(c: Coordinator, id: string): WorkOrder {
  const w = c.program('p').runner.checkIn(id);
  assert.ok('roundId' in w, `no work for ${id}: ${JSON.stringify(w)}`);
  return w;
}

describe('server: the round runner on synthetic updates', () => {
  it('closes on the cohort: a completed round publishes a version and records the aggregate metrics', async () => {
    const c = await coordinator();
    try {
      await c.start();
      const ids = await enrol(c, 3);
      const done = nextEvent(c, (e) => e.state === 'COMPLETED');
      for (const id of ids) c.program('p').runner.submit(id, work(c, id).roundId, update(c, 1e-3), 4, 100);
      const e = await done;
      assert.equal(e.updatesReceived, 3);
      assert.match(e.message, /the cohort reported/);
      assert.equal(c.program('p').runner.current().version, 1);
      const rec = (await c.store.rounds('p')).find((r) => r.state === 'completed');
      assert.ok(rec);
      assert.equal(rec.metrics.results, 1, 'streamed FedAvg hands one mean to the strategy');
      assert.equal(rec.metrics.examples, 12);
    } finally {
      await c.close();
    }
  });

  it('closes at the deadline with what arrived (≥ minUpdates)', async () => {
    const c = await coordinator({ roundDeadlineMs: 150 });
    try {
      await c.start();
      const ids = await enrol(c, 3);
      const done = nextEvent(c, (e) => e.state === 'COMPLETED' || e.state === 'FAILED');
      for (const id of ids.slice(0, 2)) c.program('p').runner.submit(id, work(c, id).roundId, update(c, 1e-3), 4, 100);
      const e = await done;
      assert.equal(e.state, 'COMPLETED');
      assert.equal(e.updatesReceived, 2);
      assert.match(e.message, /deadline/);
    } finally {
      await c.close();
    }
  });

  it('fails a round below minUpdates at the deadline, then retries it as the next attempt', async () => {
    const c = await coordinator({ roundDeadlineMs: 120 });
    try {
      await c.start();
      const [a] = await enrol(c, 1);
      const failed = nextEvent(c, (e) => e.state === 'FAILED');
      c.program('p').runner.submit(a, work(c, a).roundId, update(c, 1e-3), 4, 100);
      const f = await failed;
      assert.match(f.message, /1 update\(s\) by the close .*fewer than the minimum 2; retrying/);
      const reopened = await nextEvent(c, (e) => e.state === 'OPEN');
      assert.equal(reopened.roundNumber, 1);
      assert.equal(reopened.roundId, 'p.r1.a2');
      assert.equal(c.program('p').runner.current().version, 0);
    } finally {
      await c.close();
    }
  });

  it('streaming FedAvg equals batch FedAvg over the same updates (example-weighted)', async () => {
    const c = await coordinator({ serverOptimizer: { kind: 'fedavgm', lr: 0.7, momentum: 0.5 } });
    try {
      const before = c.program('p').runner.current().global;
      await c.start();
      const ids = await enrol(c, 3);
      const rng = seededRng(7);
      const ups = ids.map(() => update(c, () => 1e-3 * nextGaussian(rng)));
      const weights = [2, 4, 3];
      const done = nextEvent(c, (e) => e.state === 'COMPLETED');
      ids.forEach((id, k) => c.program('p').runner.submit(id, work(c, id).roundId, ups[k], weights[k], 10));
      await done;
      const streamed = c.program('p').runner.current().global;
      const batch = new FedAvgStrategy({ optimizer: { kind: 'fedavgm', lr: 0.7, momentum: 0.5 } }).aggregate(1, before, ids.map((id, k) => ({ deviceId: id, update: ups[k], numExamples: weights[k] })), []).global;
      let worst = 0;
      for (let i = 0; i < batch.length; i++) worst = Math.max(worst, Math.abs(batch[i] - streamed[i]));
      assert.ok(worst < 1e-7, `streamed and batch FedAvg differ by ${worst}`);
    } finally {
      await c.close();
    }
  });

  it('a refused aggregate leaves no trace in the server optimizer: FedAvgM’s momentum does not keep an absurd update', async () => {
    const c = await coordinator({ cohortSize: 2, minUpdates: 2, serverOptimizer: { kind: 'fedavgm', lr: 0.7, momentum: 0.5 } });
    try {
      const runner = c.program('p').runner;
      const before = runner.current().global;
      await c.start();
      const [a, b, x, y] = await enrol(c, 4);
      // attempt 1: an absurd (finite) mean — refused, the version stays
      const failed = nextEvent(c, (e) => e.state === 'FAILED');
      for (const id of [a, b]) runner.submit(id, work(c, id).roundId, update(c, 1e6), 4, 10);
      assert.match((await failed).message, /absurd value/);
      // attempt 2: honest updates — published as if attempt 1 never happened (m = Δ, global + 0.7·Δ)
      await nextEvent(c, (e) => e.state === 'OPEN');
      const done = nextEvent(c, (e) => e.state === 'COMPLETED');
      for (const id of [x, y]) runner.submit(id, work(c, id).roundId, update(c, 1e-3), 4, 10);
      await done;
      const after = runner.current();
      assert.equal(after.version, 1);
      let worst = 0;
      for (let i = 0; i < before.length; i++) worst = Math.max(worst, Math.abs(after.global[i] - (before[i] + 0.7 * 1e-3)));
      assert.ok(worst < 1e-6, `the published adapter is off by ${worst}`);
    } finally {
      await c.close();
    }
  });

  it('refuses a round that would exceed the ε budget, saying why, and completes the program', async () => {
    const one = epsilonOfSteps([{ q: 1, sigma: 1 }], 1e-5).epsilon;
    const two = epsilonOfSteps([{ q: 1, sigma: 1 }, { q: 1, sigma: 1 }], 1e-5).epsilon;
    const c = await coordinator({ cohortSize: 2, minUpdates: 2, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 2, epsilonBudget: (one + two) / 2 } });
    try {
      await c.start();
      const ids = await enrol(c, 2);
      const events: RoundEventRecord[] = [];
      c.program('p').runner.events$.subscribe((e) => events.push(e));
      const refused = nextEvent(c, (e) => e.state === 'FAILED');
      for (const id of ids) c.program('p').runner.submit(id, work(c, id).roundId, update(c, 1e-4), 4, 10);
      const f = await refused;
      assert.match(f.message, /privacy budget: round 2 would bring ε to \d+\.\d+ > the budget/);
      assert.equal(events.filter((e) => e.state === 'COMPLETED').length, 1);
      assert.ok(Math.abs(c.program('p').runner.epsilonSpent() - one) < 1e-9);
      const later = c.program('p').runner.checkIn(ids[0]);
      assert.ok('programComplete' in later && later.programComplete);
    } finally {
      await c.close();
    }
  });
});

describe('server: safe aggregates and an honest population', () => {
  it('an update of 3e38 per value cannot make the global adapter infinite (no clip norm configured)', async () => {
    const c = await coordinator({ cohortSize: 2, minUpdates: 2 });
    try {
      const before = c.program('p').runner.current().global;
      await c.start();
      const [a, b] = await enrol(c, 2);
      const settled = nextEvent(c, (e) => e.state === 'COMPLETED' || e.state === 'FAILED');
      c.program('p').runner.submit(a, work(c, a).roundId, update(c, 3e38), 4, 10);
      c.program('p').runner.submit(b, work(c, b).roundId, update(c, 3e38), 4, 10);
      await settled;
      const after = c.program('p').runner.current().global;
      let worst = 0;
      for (let i = 0; i < after.length; i++) worst = Math.max(worst, Math.abs(after[i] - before[i]));
      assert.ok(Number.isFinite(worst) && worst < 100, `the global adapter moved by ${worst}`);
    } finally {
      await c.close();
    }
  });

  it('a round with one contributor does not publish that device’s update (minContributors)', async () => {
    const c = await coordinator({ cohortSize: 3, minUpdates: 1, minContributors: 2, roundDeadlineMs: 120 });
    try {
      await c.start();
      const [a] = await enrol(c, 1);
      const settled = nextEvent(c, (e) => e.state === 'COMPLETED' || e.state === 'FAILED');
      c.program('p').runner.submit(a, work(c, a).roundId, update(c, 1e-3), 4, 10);
      const e = await settled;
      assert.equal(e.state, 'FAILED');
      assert.match(e.message, /fewer than minContributors 2/);
      assert.equal(c.program('p').runner.current().version, 0);
    } finally {
      await c.close();
    }
  });

  /** Check every id in; submit a small update for each one its coin sampled. Returns the sampled ids. */
  function poissonRound(c: Coordinator, ids: readonly string[]): string[] {
    const sampled: string[] = [];
    for (const id of ids) {
      const w = c.program('p').runner.checkIn(id);
      if ('roundId' in w) sampled.push(id);
    }
    for (const id of sampled) c.program('p').runner.submit(id, (work(c, id) as WorkOrder).roundId, update(c, 1e-4), 4, 10);
    return sampled;
  }

  it('under Poisson sampling q is the rate: 1,000 fake enrolments, fewer enrolled devices or overSelect do not move it', async () => {
    for (const [k, sybils, overSelect] of [[2, 1000, 1], [4, 0, 2]] as const) {
      const c = await coordinator({ cohortSize: 2, minUpdates: 2, overSelect, roundDeadlineMs: 5000, sampling: { selectionMs: 200 }, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 10 } });
      try {
        const ids = await enrol(c, k);
        await enrol(c, sybils, 'sybil');
        await c.start();
        const done = nextEvent(c, (e) => e.state === 'COMPLETED');
        poissonRound(c, ids);
        await done;
        const [entry] = await c.store.ledger('p');
        assert.equal(entry.q, 2 / 10);
        assert.equal(entry.scheme, 'poisson');
        assert.equal(entry.eligible, k);
        const honest = epsilonOfSteps([{ q: 2 / 10, sigma: 1 }], 1e-5).epsilon;
        assert.ok(Math.abs(c.program('p').runner.epsilonSpent() - honest) < 1e-12, `ε ${c.program('p').runner.epsilonSpent()} vs ${honest}`);
      } finally {
        await c.close();
      }
    }
  });

  it('a round the budget refuses under Poisson sampling is refused for good (q does not fall with enrolments)', async () => {
    // one round at q = 1 costs ≈ 4.73 > 3
    const c = await coordinator({ cohortSize: 2, minUpdates: 2, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 2, epsilonBudget: 3 } });
    try {
      await c.start();
      const [a] = await enrol(c, 1);
      const refused = c.program('p').runner.checkIn(a);
      assert.ok('reason' in refused && refused.programComplete, JSON.stringify(refused));
      assert.match(refused.reason, /privacy budget: round 1 would bring ε to \d+\.\d+ > the budget 3 .*; no more rounds/);
    } finally {
      await c.close();
    }
  });
});

describe('server: program config defaults that do not surprise', () => {
  it('a program without a base is an error, not the development model', () => {
    assert.throws(() => programSpec({ id: 'x', enrolmentToken: TOKEN }), /base/);
  });

  it('a DP program must declare its population', () => {
    assert.throws(() => spec({ dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1 } }), /dp\.population/);
  });

  it('minContributors defaults to 2 (10 under DP) and is checked against cohortSize', () => {
    const cfg = (over: Record<string, unknown>) => programSpec({ id: 'x', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN, ...over });
    assert.equal((cfg({ cohortSize: 5 }) as unknown as { minContributors: number }).minContributors, 2);
    assert.equal((cfg({ cohortSize: 20, dp: { mode: 'central', clipNorm: 1, noiseMultiplier: 1, population: 100 } }) as unknown as { minContributors: number }).minContributors, 10);
    assert.throws(() => cfg({ cohortSize: 1 }), /minContributors/);
    assert.throws(() => cfg({ cohortSize: 4, dp: { mode: 'central', clipNorm: 1, noiseMultiplier: 1, population: 100 } }), /minContributors/);
    assert.throws(() => cfg({ cohortSize: 4, minContributors: 5 }), /minContributors/);
    assert.equal((cfg({ cohortSize: 1, minContributors: 1 }) as unknown as { minContributors: number }).minContributors, 1);
  });
});
