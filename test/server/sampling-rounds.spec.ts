/**
 * Sampling the accountant can trust, on the real runner (a Coordinator over a temp store, no
 * gRPC, no training: synthetic updates go straight to the runner). Statistical checks use a
 * seeded coordinator rng, so they are deterministic, and a stated significance level.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { filter } from 'rxjs/operators';
import { seededRng } from '../../model/index.js';
import { epsilonFor } from '../../privacy/accountant/index.js';
import { Coordinator, openStateStore, programSpec, type RoundEventRecord } from '../../server/index.js';
import { CoordinatorError } from '../../server/errors.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'fedtune-sampling-'));
let n = 0;

/** The fields every program here shares. */
const base = (): Record<string, unknown> => ({
  id: 'p',
  base: MODEL.bin,
  tokenizer: MODEL.tok,
  enrolmentToken: TOKEN,
  lora: { rank: 1, targets: ['wq'], seed: 3 },
  training: { steps: 1, batchSize: 1, seqLen: 16 },
  roundDeadlineMs: 60_000,
  retryDelayMs: 0,
});

async function coordinator(over: Record<string, unknown>, seed: number, log?: (msg: string) => void): Promise<Coordinator> {
  const spec = programSpec({ ...base(), ...over });
  return await Coordinator.open({ dataDir: join(dir, `c${++n}`), programs: [spec], rng: seededRng(seed), log });
}

async function enrol(c: Coordinator, k: number): Promise<string[]> {
  return Promise.all(Array.from({ length: k }, async (_, i) => {
    const key = new Uint8Array(32);
    key[0] = i & 255;
    key[1] = i >> 8;
    return (await c.store.enrollDevice({ id: `dev-${i}`, programId: 'p', signPublicKey: key, boxPublicKey: key, label: '' })).id;
  }));
}

const opened = (c: Coordinator, round: number) => firstValueFrom(c.program('p').runner.events$.pipe(filter((e: RoundEventRecord) => e.roundNumber === round && e.state === 'OPEN')));

/** Start the runner and resolve once round 1 is open (OPEN events are live only: subscribe first). */
async function start(c: Coordinator): Promise<void> {
  const first = opened(c, 1);
  await c.start();
  await first;
}
const completed = (c: Coordinator, round: number) => firstValueFrom(c.program('p').runner.watch(round - 1).pipe(filter((e: RoundEventRecord) => e.roundNumber === round && e.state === 'COMPLETED')));

/** log C(n, k). */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/** Exact two-sided binomial test: P(X with pmf ≤ pmf(k)) for X ~ Bin(n, p) (the textbook definition, as R's binom.test). */
function binomialTwoSidedP(k: number, trials: number, p: number): number {
  const pmf = (j: number): number => Math.exp(logChoose(trials, j) + j * Math.log(p) + (trials - j) * Math.log1p(-p));
  const at = pmf(k) * (1 + 1e-7);
  let total = 0;
  for (let j = 0; j <= trials; j++) if (pmf(j) <= at) total += pmf(j);
  return Math.min(1, total);
}

/**
 * Run `rounds` rounds where every device checks in (always in the same order: dev-0 first) and
 * every device given work submits at once; returns how often each device was in a round's work
 * and, per round, the devices that got work.
 */
async function runRounds(c: Coordinator, ids: readonly string[], rounds: number): Promise<{ counts: Map<string, number>; perRound: string[][] }> {
  const runner = c.program('p').runner;
  const counts = new Map(ids.map((id) => [id, 0]));
  const perRound: string[][] = [];
  const len = c.program('p').flatLength;
  for (let r = 1; r <= rounds; r++) {
    const done = completed(c, r);
    const next = r < rounds ? opened(c, r + 1) : undefined;
    const got: { id: string; roundId: string }[] = [];
    for (const id of ids) {
      const w = runner.checkIn(id);
      if ('roundId' in w) got.push({ id, roundId: w.roundId });
    }
    for (const { id, roundId } of got) {
      counts.set(id, (counts.get(id) ?? 0) + 1);
      if (runner.roundDeadline(roundId) !== undefined) runner.submit(id, roundId, new Float32Array(len).fill(1e-4), 4, 10);
    }
    perRound.push(got.map((g) => g.id));
    await done;
    await next;
  }
  return { counts, perRound };
}

describe('server: sampling the accountant can trust', function () {
  this.timeout(120_000);

  it('Poisson: each device’s inclusion frequency over 100 rounds matches q (exact binomial test, α = 0.01 Bonferroni over 16 devices); the ledger holds what was drawn and ε equals the accountant’s', async () => {
    const N = 16;
    const R = 100;
    const q = 0.25; // cohortSize / population = 4 / 16
    const z = 1.2;
    const delta = 1e-5;
    const c = await coordinator({ cohortSize: 4, minContributors: 1, rounds: R, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: z, delta, population: N } }, 2026);
    try {
      const ids = await enrol(c, N);
      await start(c);
      const { counts, perRound } = await runRounds(c, ids, R);
      const alpha = 0.01 / N;
      for (const id of ids) {
        const k = counts.get(id) ?? 0;
        const p = binomialTwoSidedP(k, R, q);
        assert.ok(p > alpha, `${id} was in ${k} of ${R} rounds (expected ${q * R}): two-sided binomial p = ${p.toExponential(2)} ≤ ${alpha}`);
      }
      // pooled: every coin of every round
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      assert.ok(binomialTwoSidedP(total, N * R, q) > 0.01, `${total} inclusions of ${N * R} coins`);
      // the ledger: one Poisson row per round with exactly what was drawn
      const ledger = (await c.store.ledger('p'));
      assert.equal(ledger.length, R);
      ledger.forEach((e, i) => {
        assert.equal(e.scheme, 'poisson');
        assert.equal(e.q, q);
        assert.equal(e.sigma, z);
        assert.equal(e.eligible, N, `round ${i + 1}: every enrolled device checked in`);
        assert.equal(e.selected, perRound[i].length, `round ${i + 1}: the sampled count`);
        assert.equal(e.population, N);
      });
      // each completed round aggregated exactly its sampled devices, once each
      const rec = (await c.store.rounds('p')).filter((x) => x.state === 'completed');
      rec.forEach((x, i) => assert.equal(x.metrics.results, perRound[i].length, `round ${i + 1}`));
      // not cut first-come: a round takes every sampled device, more than cohortSize when the coins say so;
      // and under central DP a round with fewer than minUpdates is still released (no count gate)
      assert.ok(perRound.some((p) => p.length > 4), 'some round sampled more than cohortSize');
      assert.ok(perRound.some((p) => p.length < c.program('p').spec.minUpdates), 'some round sampled fewer than minUpdates');
      assert.equal(rec.length, R, 'every round completed');
      // ε from the ledger equals the accountant on R homogeneous steps (q, z) at δ
      const want = epsilonFor(q, z, R, delta).epsilon;
      assert.ok(Math.abs(c.program('p').runner.epsilonSpent() - want) < 1e-9 * want, `${c.program('p').runner.epsilonSpent()} vs ${want}`);
      assert.ok(Math.abs(ledger[R - 1].epsilonAfter - want) < 1e-9 * want);
    } finally {
      await c.close();
    }
  });

  it('negative control: the same binomial test rejects first-come selection (dev-0 always checks in first)', async () => {
    const N = 16;
    const R = 30;
    const c = await coordinator({ cohortSize: 4, minUpdates: 4, minContributors: 2, overSelect: 1, rounds: R }, 7);
    try {
      const ids = await enrol(c, N);
      await start(c);
      const { counts } = await runRounds(c, ids, R);
      const k = counts.get('dev-0') ?? 0;
      assert.equal(k, R, 'first-come always takes the first device to check in');
      assert.ok(binomialTwoSidedP(k, R, 0.25) < 0.01 / N, 'the test has the power to see it');
      assert.equal(counts.get(`dev-${N - 1}`), 0, 'and never the last');
    } finally {
      await c.close();
    }
  });

  it('a device never contributes twice to a round: re-check-in cannot re-roll its coin, a second upload or a replay into the next round is refused', async () => {
    const c = await coordinator({ cohortSize: 3, minContributors: 1, rounds: 2, sampling: { selectionMs: 60_000 - 1 }, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 6 } }, 11);
    try {
      const ids = await enrol(c, 6);
      await start(c);
      const runner = c.program('p').runner;
      const len = c.program('p').flatLength;
      // check in all but the last device: the selection stays open
      const first = new Map(ids.slice(0, 5).map((id) => [id, runner.checkIn(id)]));
      const sampled = [...first].filter(([, w]) => 'roundId' in w).map(([id]) => id);
      const unsampled = [...first].filter(([, w]) => !('roundId' in w)).map(([id]) => id);
      assert.ok(sampled.length > 0 && unsampled.length > 0, `seed 11 samples some, not all: ${sampled}`);
      for (const id of unsampled) {
        for (let i = 0; i < 50; i++) {
          const again = runner.checkIn(id);
          assert.ok(!('roundId' in again), `${id} got work on re-check-in ${i + 1}`);
          assert.match(again.reason, /not sampled for round 1/);
        }
        assert.throws(
          () => runner.submit(id, 'p.r1.a1', new Float32Array(len), 1, 1),
          (e: unknown) => e instanceof CoordinatorError && e.kind === 'failed-precondition' && /was not selected/.test(e.message),
        );
      }
      const [a] = sampled;
      const roundId = (first.get(a) as { roundId: string }).roundId;
      assert.equal((runner.checkIn(a) as { roundId: string }).roundId, roundId, 'a sampled device checking in again gets the same work');
      runner.submit(a, roundId, new Float32Array(len).fill(1e-4), 1, 1);
      assert.throws(() => runner.submit(a, roundId, new Float32Array(len).fill(1e-4), 1, 1), (e: unknown) => e instanceof CoordinatorError && e.kind === 'already-exists');
      assert.match((runner.checkIn(a) as { reason: string }).reason, /already took part in round 1/);
      // the rest answer; the last device's check-in closes the selection (every enrolled device has its coin)
      const done = completed(c, 1);
      const second = opened(c, 2);
      for (const id of sampled.slice(1)) runner.submit(id, roundId, new Float32Array(len).fill(1e-4), 1, 1);
      const last = runner.checkIn(ids[5]);
      if ('roundId' in last) runner.submit(ids[5], roundId, new Float32Array(len).fill(1e-4), 1, 1);
      const e1 = await done;
      assert.equal(e1.updatesReceived, sampled.length + ('roundId' in last ? 1 : 0));
      // a replay of round 1's upload once round 2 is open
      await second;
      assert.throws(() => runner.submit(a, roundId, new Float32Array(len).fill(1e-4), 1, 1), (e: unknown) => e instanceof CoordinatorError && e.kind === 'deadline-exceeded');
      const ledger = (await c.store.ledger('p'));
      assert.equal(ledger[0].selected, e1.updatesReceived);
      assert.equal(ledger[0].eligible, 6);
    } finally {
      await c.close();
    }
  });

  it('fixed-cohort (no DP): min(m, n) of the devices that checked in during the window, drawn when it closes', async () => {
    let selectionClosed!: () => void;
    const closed = new Promise<void>((resolve) => (selectionClosed = resolve));
    const c = await coordinator({ cohortSize: 3, minUpdates: 3, minContributors: 2, rounds: 1, sampling: { scheme: 'fixed-cohort', selectionMs: 100 } }, 5, (msg) => {
      if (msg === 'selection closed') selectionClosed();
    });
    try {
      const ids = await enrol(c, 8);
      await start(c);
      const runner = c.program('p').runner;
      for (const id of ids.slice(0, 5)) assert.match((runner.checkIn(id) as { reason: string }).reason, /drawn when its selection closes/);
      await closed;
      const answers = ids.map((id) => runner.checkIn(id));
      const chosen = ids.filter((_, i) => 'roundId' in answers[i]);
      assert.equal(chosen.length, 3);
      assert.ok(chosen.every((id) => ids.slice(0, 5).includes(id)), `only candidates are drawn: ${chosen}`);
      for (const i of [5, 6, 7]) assert.match((answers[i] as { reason: string }).reason, /selection has closed/);
      const done = completed(c, 1);
      for (const id of chosen) runner.submit(id, (answers[ids.indexOf(id)] as { roundId: string }).roundId, new Float32Array(c.program('p').flatLength).fill(1e-4), 4, 1);
      assert.match((await done).message, /the selection closed and every sampled device answered/);
    } finally {
      await c.close();
    }
  });

  it('Poisson with SecAgg (distributed DP): no cap on the secure aggregation; its selection closes with the Poisson selection', async () => {
    const c = await coordinator({ cohortSize: 4, minUpdates: 3, minContributors: 3, rounds: 1, secagg: { phaseTimeoutMs: 60_000 }, dp: { mode: 'distributed', clipNorm: 0.5, noiseMultiplier: 1, population: 4 } }, 3);
    try {
      const ids = await enrol(c, 4);
      await start(c);
      const runner = c.program('p').runner;
      const works = ids.slice(0, 3).map((id) => runner.checkIn(id));
      assert.ok(works.every((w) => 'roundId' in w), 'q = 1: every device is sampled');
      const roundId = (works[0] as { roundId: string }).roundId;
      assert.equal(runner.secAggRound(roundId).phase, 'selecting', 'a device has yet to check in');
      assert.ok('roundId' in runner.checkIn(ids[3]));
      assert.equal(runner.secAggRound(roundId).phase, 'advertising', 'every enrolled device has its coin: the selection closed');
      assert.equal(runner.secAggRound(roundId).ids.size, 4);
    } finally {
      await c.close();
    }
  });

  it('the coordinator refuses to start on a ledger row it cannot account (first-come from before schemes were recorded, another scheme)', async () => {
    const over = { cohortSize: 2, minContributors: 1, dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1, population: 4 } };
    for (const [scheme, re] of [['', /round 1 \(p\.r1\.a1\) was sampled by an unrecorded scheme \(first-come.*its ε cannot be stated; start a new program id/], ['fixed-cohort', /was sampled "fixed-cohort", which no accountant here covers/]] as const) {
      const c = await coordinator(over, 1);
      const dataDir = join(dir, `c${n}`);
      await c.close();
      const store = await openStateStore(join(dataDir, 'coordinator.sqlite'));
      await store.appendLedger({ programId: 'p', roundId: 'p.r1.a1', roundNumber: 1, q: 0.5, population: 4, scheme, eligible: -1, selected: -1, sigma: 1, epsilonAfter: 1, delta: 1e-5 });
      await store.close();
      await assert.rejects(Coordinator.open({ dataDir, programs: [programSpec({ ...base(), ...over })], rng: seededRng(1) }), re);
    }
  });
});
