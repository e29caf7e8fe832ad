/**
 * Rounds every replica serves (sql-intake.ts), on both engines, with two pools racing on
 * PostgreSQL: a device's coin is claimed once (a second check-in anywhere gets the first coin);
 * a capped selection admits exactly its cap; an update is stored only for a working participant
 * of an open round; and — the invariant — every update acknowledged ('accepted') while the intake
 * closes is among the rows read after the close, and no refused one is.
 */
import assert from 'node:assert/strict';
import { openStateStore, PostgresExecutor, type RoundChange, type RoundPlanRecord, type StateStore, type StoredRound } from '../../../server/storage/index.js';
import { describeEngines } from './engines.js';

const program = { id: 'p', configJson: '{}', baseSha256: 'b'.repeat(64), loraJson: '{}', boxPublicKey: new Uint8Array(32), boxSecretKey: new Uint8Array(32) };

function round(id: string, number: number): StoredRound {
  return {
    programId: 'p', roundId: id, roundNumber: number, attempt: 1, state: 'open', adapterVersion: 0, updates: 0, selected: 0, failed: 0, bytesReceived: 0,
    clipNorm: 1, noiseMultiplier: 0, epsilonSpent: 0, message: '', openedMs: 1, closedMs: 0, metrics: {},
  };
}

function plan(id: string, number: number, cap: number): RoundPlanRecord {
  return { roundId: id, programId: 'p', roundNumber: number, adapterVersion: 0, clipNorm: 1, deviceNoiseStd: 0.5, deadlineMs: 9e12, selectionEndsMs: 9e12, cap, driver: 'a', intakeClosedMs: 0 };
}

const update = (deviceId: string, roundId: string, v: number) => ({ roundId, deviceId, replicaId: 'r', update: new Float32Array([v, -v, 2 * v]), weight: 1, unclipped: true, bytesReceived: 12 });

describeEngines('server/storage rounds every replica serves', (engine) => {
  let a: StateStore;
  let b: StateStore;
  let location = '';
  before(async () => {
    location = await engine.location();
    a = await openStateStore(location, { poolSize: 6 });
    b = engine.name === 'postgres' ? await openStateStore(location, { poolSize: 6 }) : a;
    await a.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 1 });
  });
  after(async () => {
    await a.close();
    if (b !== a) await b.close();
  });

  it('records the plan with the round, and serves only an open round whose intake is open', async () => {
    await a.openRound(round('p.r1', 1), plan('p.r1', 1, 0));
    assert.deepEqual(await b.openRoundPlan('p'), plan('p.r1', 1, 0));
    assert.equal(await a.closeIntake('p.r1'), true);
    assert.equal(await b.closeIntake('p.r1'), false, 'closed once');
    assert.equal(await b.openRoundPlan('p'), undefined);
    await assert.rejects(a.openRound(round('p.r9', 9), plan('p.r8', 8, 0)), /plan is of round p\.r8/);
  });

  it('claims a device’s coin once: a second check-in on any replica gets the first coin, never a new roll', async () => {
    await a.openRound(round('p.r2', 2), plan('p.r2', 2, 0));
    assert.deepEqual(await a.admitParticipant('p.r2', 'd1', 'a', false), { outcome: 'admitted', status: 'not-sampled' });
    assert.deepEqual(await b.admitParticipant('p.r2', 'd1', 'b', true), { outcome: 'known', status: 'not-sampled' });
    // racing check-ins of one device with different coins: all see the same stored coin
    const got = await Promise.all([true, false, true, false].map((coin, i) => (i % 2 ? b : a).admitParticipant('p.r2', 'd2', 'x', coin)));
    const coins = new Set(got.map((g) => ('status' in g ? g.status : g.outcome)));
    assert.equal(coins.size, 1, JSON.stringify(got));
    assert.equal(got.filter((g) => g.outcome === 'admitted').length, 1);
    assert.equal(await a.acceptRoundUpdate(update('d1', 'p.r2', 1)), 'not-sampled');
    // the driver ends the selection: no new coin anywhere, a device admitted before keeps its place
    assert.equal(await a.endSelection('p.r2'), true);
    assert.equal(await b.endSelection('p.r2'), false, 'ended once');
    assert.deepEqual(await b.admitParticipant('p.r2', 'd3', 'b', true), { outcome: 'selection-closed' });
    assert.deepEqual(await b.admitParticipant('p.r2', 'd1', 'b', true), { outcome: 'known', status: 'not-sampled' });
  });

  it('admits exactly the cap of a first-come selection, however the check-ins race', async () => {
    await a.openRound(round('p.r3', 3), plan('p.r3', 3, 5));
    const got = await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? b : a).admitParticipant('p.r3', `d${i}`, 'x', true)));
    assert.equal(got.filter((g) => g.outcome === 'admitted').length, 5);
    assert.equal(got.filter((g) => g.outcome === 'full').length, 11);
    assert.equal([...(await a.participantStatuses('p.r3')).values()].filter((s) => s === 'working').length, 5);
  });

  it('stores an update once, for a working participant only; refuses one after the intake closed', async () => {
    await a.openRound(round('p.r4', 4), plan('p.r4', 4, 0));
    await a.admitParticipant('p.r4', 'd1', 'a', true);
    await a.admitParticipant('p.r4', 'd2', 'a', true);
    assert.equal(await b.acceptRoundUpdate(update('d1', 'p.r4', 3)), 'accepted');
    assert.equal(await a.acceptRoundUpdate(update('d1', 'p.r4', 4)), 'done', 'a second upload of a device is refused');
    assert.equal(await a.acceptRoundUpdate(update('d9', 'p.r4', 4)), 'not-selected');
    assert.equal(await a.failParticipant('p.r4', 'd2', 'a'), true);
    assert.equal(await a.acceptRoundUpdate(update('d2', 'p.r4', 4)), 'failed');
    await a.admitParticipant('p.r4', 'd3', 'a', true);
    await a.closeIntake('p.r4');
    assert.equal(await b.acceptRoundUpdate(update('d3', 'p.r4', 5)), 'closed');
    assert.deepEqual(await a.admitParticipant('p.r4', 'd4', 'a', true), { outcome: 'closed' });
    const rows = await b.roundUpdates('p.r4');
    assert.deepEqual(rows.map((r) => [r.deviceId, [...r.update]]), [['d1', [3, -3, 6]]]);
  });

  it('never acknowledges an update the close leaves out: every accepted one is read after the close, no refused one', async () => {
    await a.openRound(round('p.r5', 5), plan('p.r5', 5, 0));
    const n = 30;
    for (let i = 0; i < n; i++) await a.admitParticipant('p.r5', `d${i}`, 'a', true);
    const offers = Array.from({ length: n }, (_, i) => (i % 2 ? b : a).acceptRoundUpdate(update(`d${i}`, 'p.r5', i)).then((o) => [`d${i}`, o] as const));
    // the close lands in the middle of the acceptances
    await new Promise((r) => setImmediate(r));
    const closed = a.closeIntake('p.r5');
    const outcomes = await Promise.all(offers);
    assert.equal(await closed, true);
    const read = await b.roundUpdates('p.r5');
    const accepted = outcomes.filter(([, o]) => o === 'accepted').map(([d]) => d).sort();
    assert.deepEqual(read.map((r) => r.deviceId), accepted);
    // read in pages, the same rows in the same order
    const paged: string[] = [];
    for (let after = '', got = [] as string[]; ; after = got[got.length - 1]) {
      got = (await a.roundUpdates('p.r5', after, 7)).map((r) => r.deviceId);
      paged.push(...got);
      if (got.length < 7) break;
    }
    assert.deepEqual(paged, accepted);
    assert.ok(outcomes.every(([, o]) => o === 'accepted' || o === 'closed'), JSON.stringify(outcomes));
    // whatever came after the close is refused for good
    for (const [d, o] of outcomes) if (o === 'closed') assert.equal(await a.acceptRoundUpdate(update(d, 'p.r5', 0)), 'closed');
  });

  if (engine.name === 'postgres')
    it('tells listening replicas of each change once it commits (LISTEN/NOTIFY)', async () => {
      const heard: RoundChange[] = [];
      let wake = (): void => {};
      const stop = await b.onRoundChange((c) => {
        heard.push(c);
        wake();
      });
      const until = (k: number) => new Promise<void>((resolve) => {
        wake = () => heard.length >= k && resolve();
        wake();
      });
      try {
        await a.openRound(round('p.r6', 6), plan('p.r6', 6, 0));
        await a.admitParticipant('p.r6', 'd1', 'a', true);
        await a.acceptRoundUpdate(update('d1', 'p.r6', 1));
        await a.closeIntake('p.r6');
        await until(4);
        assert.deepEqual(heard.map((c) => [c.roundId, c.deviceId, c.what]), [
          ['p.r6', undefined, 'open'],
          ['p.r6', 'd1', 'working'],
          ['p.r6', 'd1', 'done'],
          ['p.r6', undefined, 'closed'],
        ]);
      } finally {
        await stop();
      }
    });

  if (engine.name === 'postgres')
    it('listens again after its connection is lost, and says so (changes meanwhile may have been missed)', async function () {
      this.timeout(20_000);
      const heard: RoundChange[] = [];
      let gaps = 0;
      let wake = (): void => {};
      const stop = await b.onRoundChange(
        (c) => {
          heard.push(c);
          wake();
        },
        () => {
          gaps++;
          wake();
        },
      );
      const until = (ok: () => boolean) => new Promise<void>((resolve) => {
        wake = () => ok() && resolve();
        wake();
      });
      const admin = new PostgresExecutor(location, 1);
      try {
        // the listening connection is the one whose last statement was LISTEN (in this test's database)
        const killed = await admin.all("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN fedtune_rounds'");
        assert.equal(killed.length, 1);
        await until(() => gaps === 1);
        await a.openRound(round('p.r7', 7), plan('p.r7', 7, 0));
        await until(() => heard.some((c) => c.roundId === 'p.r7'));
      } finally {
        await admin.close();
        await stop();
      }
    });
});
