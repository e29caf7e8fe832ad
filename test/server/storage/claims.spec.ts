/**
 * The replica claims under contention: two connection pools (two replicas) race for the same
 * nonces, round places and lease, and exactly one claim of each wins; partial sums saved out of
 * order keep the largest. On SQLite (one process by design) the racers share the one store.
 */
import assert from 'node:assert/strict';
import { openStateStore, type StateStore } from '../../../server/storage/index.js';
import { describeEngines } from './engines.js';

const KEYS = 40;

describeEngines('server/storage claims under contention', (engine) => {
  let a: StateStore;
  let b: StateStore;
  let both: StateStore[];
  before(async () => {
    const location = await engine.location();
    a = await openStateStore(location, { poolSize: 4 });
    b = engine.name === 'postgres' ? await openStateStore(location, { poolSize: 4 }) : a;
    both = [a, b];
  });
  after(async () => {
    await a.close();
    if (b !== a) await b.close();
  });

  /** Every racer makes its claim at once; returns how many won per key. */
  async function race(claim: (s: StateStore, key: number, racer: number) => Promise<boolean>, racersPerStore = 3): Promise<number[]> {
    const attempts: Promise<{ key: number; won: boolean }>[] = [];
    for (let key = 0; key < KEYS; key++)
      for (let racer = 0; racer < racersPerStore; racer++)
        for (const [i, s] of both.entries()) attempts.push(claim(s, key, i * racersPerStore + racer).then((won) => ({ key, won })));
    const wins = new Array<number>(KEYS).fill(0);
    for (const { key, won } of await Promise.all(attempts)) if (won) wins[key]++;
    return wins;
  }

  it('lets exactly one racer claim each nonce', async () => {
    assert.deepEqual(await race((s, key) => s.claimNonce(`dev${key % 7}`, `nonce-${key}`, 10_000)), new Array(KEYS).fill(1));
  });

  it('admits each device to a round exactly once', async () => {
    assert.deepEqual(await race((s, key) => s.claimParticipation('round-1', `dev${key}`)), new Array(KEYS).fill(1));
    assert.equal((await b.participants('round-1')).length, KEYS);
  });

  it('gives each program’s lease to exactly one of the racing replicas, and to the next only after it expires', async () => {
    const wins = await race((s, key, racer) => s.acquireLease(`program-${key}`, `replica-${racer}`, 60_000, 1_000));
    assert.deepEqual(wins, new Array(KEYS).fill(1));
    for (let key = 0; key < 3; key++) assert.equal((await a.lease(`program-${key}`))?.epoch, 1);
    // after expiry, again exactly one new holder per program (holders that differ from the old one)
    const rewins = await race((s, key, racer) => s.acquireLease(`program-${key}`, `late-${racer}`, 60_000, 61_000));
    assert.deepEqual(rewins, new Array(KEYS).fill(1));
    for (let key = 0; key < 3; key++) assert.equal((await b.lease(`program-${key}`))?.epoch, 2);
  });

  it('keeps the partial sum of the most updates when a replica’s saves race', async () => {
    const saves: Promise<boolean>[] = [];
    for (let count = 1; count <= 30; count++) {
      const s = both[count % 2];
      saves.push(s.savePartialSum('round-2', 'replica-x', Uint8Array.of(count), count, count));
    }
    await Promise.all(saves);
    const [sum] = await a.partialSums('round-2');
    assert.equal(sum.count, 30);
    assert.deepEqual(sum.bytes, Uint8Array.of(30), 'the bytes belong to the same save as the count');
  });

  it('merges evaluations recorded by both replicas at once without losing one (read-modify-write in a transaction)', async () => {
    await a.createProgram({ id: 'p', configJson: '{}', baseSha256: 'b'.repeat(64), loraJson: '{}', boxPublicKey: new Uint8Array(32), boxSecretKey: new Uint8Array(32) }, { sha256: 'a'.repeat(64), sizeBytes: 1 });
    const round = { programId: 'p', roundId: 'p.r1.a1', roundNumber: 1, attempt: 1, state: 'open' as const, adapterVersion: 0, updates: 0, selected: 0, failed: 0, bytesReceived: 0, clipNorm: 0, noiseMultiplier: 0, epsilonSpent: 0, message: '', openedMs: 1, closedMs: 0, metrics: {} };
    await a.openRound(round);
    await Promise.all(Array.from({ length: 16 }, (_, i) => both[i % 2].recordRoundEval(round.roundId, { [`metric${i}`]: i })));
    const [r] = await b.rounds('p');
    assert.deepEqual(r.metrics, Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`metric${i}`, i])));
  });
});
