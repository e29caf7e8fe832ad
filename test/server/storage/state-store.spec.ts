/**
 * The StateStore on both engines against the reference: every method of the synchronous
 * single-node Store (server/store.ts), driven through the same script, must return the same
 * results and refuse the same misuse; plus transactions and the replica claims on one store.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../support/legacy-store.js';
import { openStateStore, PostgresExecutor, type StateStore, type StoredRound } from '../../../server/storage/index.js';
import { describeEngines } from './engines.js';

const key = (b: number): Uint8Array => new Uint8Array(32).fill(b);
const program = { id: 'p', configJson: '{}', baseSha256: 'b'.repeat(64), loraJson: '{"rank":4}', boxPublicKey: key(1), boxSecretKey: key(2) };
const round = (n: number, attempt = 1): StoredRound => ({
  programId: 'p', roundId: `p.r${n}.a${attempt}`, roundNumber: n, attempt, state: 'open', adapterVersion: n - 1, updates: 0, selected: 0, failed: 0,
  bytesReceived: 0, clipNorm: 0.5, noiseMultiplier: 1.25, epsilonSpent: 0.1 * n, message: '', openedMs: 1_700_000_000_000 + n, closedMs: 0, metrics: {},
});
const device = (id: string, k: number) => ({ id, programId: 'p', signPublicKey: key(k), boxPublicKey: key(k + 100), label: `device ${id}` });
const release = (sequence: number, signed: boolean) => ({ programId: 'p', sequence, version: sequence, kind: 'version' as const, manifest: new TextEncoder().encode(`{"v":${sequence}}`), signature: signed ? key(9).subarray(0, 64) : new Uint8Array(0) });

/** The script: [method, args] — every Store method, including misuse that must throw. */
const SCRIPT: readonly (readonly [string, readonly unknown[]])[] = [
  ['createProgram', [program, { sha256: 'a'.repeat(64), sizeBytes: 123 }, 100]],
  ['program', ['p']],
  ['program', ['missing']],
  ['updateProgramConfig', ['p', '{"rounds":3}']],
  ['program', ['p']],
  ['enrollDevice', [device('d1', 11), 200]],
  ['enrollDevice', [{ ...device('d1-again', 11), label: 'other' }, 201]],
  ['enrollDevice', [device('d2', 12), 202]],
  ['enrollDevice', [device('d3', 13), 203]],
  ['device', ['d1']],
  ['device', ['d1-again']],
  ['deviceCount', ['p']],
  ['latestVersion', ['p']],
  ['latestVersion', ['missing']],
  ['programHasBlob', ['p', 'a'.repeat(64)]],
  ['programHasBlob', ['p', 'f'.repeat(64)]],
  ['openRound', [round(1)]],
  ['rounds', ['p']],
  ['appendLedger', [{ programId: 'p', roundId: 'p.r1.a1', roundNumber: 1, q: 0.25, population: 12, sigma: 1.5, epsilonAfter: 0.75, delta: 1e-5, scheme: 'poisson', eligible: 40, selected: 11 }, 300]],
  ['completeRound', [{ ...round(1), state: 'completed', updates: 3, selected: 4, failed: 1, bytesReceived: 4096, message: 'ok', closedMs: 1_700_000_000_500, metrics: { results: 3, examples: 12.5 } }, { version: 1, sha256: 'c'.repeat(64), sizeBytes: 2048 }, release(1, true)]],
  ['completeRound', [{ ...round(1), state: 'completed', closedMs: 5 }, { version: 2, sha256: 'd'.repeat(64), sizeBytes: 1 }]],
  ['recordRoundEval', ['p.r1.a1', { heldOutLoss: 2.5 }]],
  ['recordRoundEval', ['p.r1.a1', { heldOutLoss: 2.25, perplexity: 9.5 }]],
  ['recordRoundEval', ['nope', { x: 1 }]],
  ['openRound', [round(2)]],
  ['failRound', [{ ...round(2), message: 'too few updates', closedMs: 1_700_000_001_000 }]],
  ['failRound', [{ ...round(2), message: 'again', closedMs: 1 }]],
  ['openRound', [round(2, 2)]],
  ['openRound', [round(3)]],
  ['failOpenRounds', ['p', 400]],
  ['failOpenRounds', ['p', 401]],
  ['rounds', ['p']],
  ['completedRounds', ['p']],
  ['latestVersion', ['p']],
  ['version', ['p', 1]],
  ['version', ['p', 9]],
  ['releaseKey', ['p']],
  ['setReleaseKey', ['p', { signing: 'offline', publicKey: key(21) }]],
  ['releaseKey', ['p']],
  ['setReleaseKey', ['p', { signing: 'coordinator', publicKey: key(22), secretKey: new Uint8Array(64).fill(23) }]],
  ['releaseKey', ['p']],
  ['addRelease', [release(2, false), 500]],
  ['signRelease', ['p', 2, new Uint8Array(64).fill(7)]],
  ['signRelease', ['p', 2, new Uint8Array(64).fill(8)]],
  ['releases', ['p']],
  ['appendLedger', [{ programId: 'p', roundId: 'p.r4.a1', roundNumber: 4, q: 0.5, population: 8, sigma: 0.9, epsilonAfter: 1.5, delta: 1e-5, scheme: 'poisson', eligible: 30, selected: 14 }, 250]],
  ['ledger', ['p']],
  ['programAdmin', ['p']],
  ['setProgramAdmin', ['p', { state: 'paused', reason: 'maintenance', actor: 'alice', updatedMs: 600 }]],
  ['programAdmin', ['p']],
  ['setProgramAdmin', ['p', { state: 'stopped', reason: 'done', actor: 'bob', updatedMs: 601 }]],
  ['programAdmin', ['p']],
  ['setProgramAdmin', ['p', undefined]],
  ['programAdmin', ['p']],
  ['revokeDevice', ['d2', 'p', 'lost', 'alice', 700]],
  ['revokeDevice', ['d2', 'p', 'second time', 'bob', 701]],
  ['revokedDeviceIds', []],
  ['listDevices', ['p']],
  ['listDevices', ['p', 2]],
  ['revokedCount', ['p']],
];

type Outcome = { ok: unknown } | { threw: string };
type Methods = Record<string, (...args: unknown[]) => unknown>;

describeEngines('server/storage StateStore', (engine) => {
  let s: StateStore;
  beforeEach(async () => {
    s = await openStateStore(await engine.location());
  });
  afterEach(async () => {
    await s.close();
  });

  it('returns what the single-node Store returns for every method, and refuses the same misuse', async () => {
    const ref = new Store(join(mkdtempSync(join(tmpdir(), 'fedtune-ref-')), 'ref.sqlite'));
    try {
      for (const [method, args] of SCRIPT) {
        let want: Outcome;
        let got: Outcome;
        try {
          want = { ok: (ref as unknown as Methods)[method](...args) };
        } catch (e) {
          want = { threw: (e as Error).constructor.name };
        }
        try {
          got = { ok: await (s as unknown as Methods)[method](...args) };
        } catch (e) {
          got = { threw: (e as Error).constructor.name };
        }
        assert.deepEqual(got, want, `${method}(${JSON.stringify(args).slice(0, 80)})`);
      }
    } finally {
      ref.close();
    }
    assert.equal(s.engine, engine.name);
  });

  it('commits a transaction that resolves, rolls back one that throws, and joins nested ones', async () => {
    await s.withTransaction(async (tx) => {
      await tx.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 1 }, 1);
      await tx.withTransaction((inner) => inner.enrollDevice(device('d1', 11), 2));
    });
    await assert.rejects(
      s.withTransaction(async (tx) => {
        await tx.enrollDevice(device('d2', 12), 3);
        await tx.updateProgramConfig('p', '{"changed":true}');
        assert.equal(await tx.deviceCount('p'), 2, 'a transaction sees its own writes');
        throw new Error('abandon');
      }),
      /abandon/,
    );
    assert.equal(await s.deviceCount('p'), 1);
    assert.equal((await s.program('p'))?.configJson, '{}');
    assert.equal(await s.device('d2'), undefined);
    // a multi-statement method is atomic: a completeRound whose round is not open adds no version
    await assert.rejects(s.completeRound({ ...round(7), state: 'completed' }, { version: 1, sha256: 'c'.repeat(64), sizeBytes: 1 }), /not open/);
    assert.equal(await s.version('p', 1), undefined);
  });

  it('keeps a write made outside a running transaction out of it (it survives the rollback)', async () => {
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const issued = new Promise<void>((resolve) => (release = resolve));
    const tx = s.withTransaction(async (t) => {
      await t.createProgram(program, { sha256: 'a'.repeat(64), sizeBytes: 1 }, 1);
      entered();
      await issued; // held open until the outside write has been sent
      throw new Error('abandon');
    });
    await inside;
    const outside = s.claimNonce('d1', 'ef'.repeat(8), 10);
    release();
    await assert.rejects(tx, /abandon/);
    assert.equal(await outside, true);
    assert.equal(await s.program('p'), undefined, 'the transaction rolled back');
    assert.equal(await s.claimNonce('d1', 'ef'.repeat(8), 10), false, 'the outside write was kept');
  });

  it('refuses a bad location', async () => {
    await assert.rejects(openStateStore(''), TypeError);
    assert.throws(() => new PostgresExecutor('mysql://x/y'), TypeError);
    assert.throws(() => new PostgresExecutor('postgres://x/y', 0), RangeError);
  });

  it('claims a nonce once per device, and forgets only expired ones', async () => {
    assert.equal(await s.claimNonce('d1', 'ab'.repeat(8), 1000), true);
    assert.equal(await s.claimNonce('d1', 'ab'.repeat(8), 5000), false, 'a replay is refused');
    assert.equal(await s.claimNonce('d2', 'ab'.repeat(8), 1000), true, 'another device may use the same nonce');
    assert.equal(await s.claimNonce('d1', 'cd'.repeat(8), 3000), true);
    assert.equal(await s.purgeExpiredNonces(2000), 2);
    assert.equal(await s.claimNonce('d1', 'cd'.repeat(8), 3000), false, 'an unexpired nonce is kept');
    await assert.rejects(s.claimNonce('', 'x', 1), TypeError);
    await assert.rejects(s.claimNonce('d1', 'x', Number.NaN), RangeError);
  });

  it('admits a device to a round once', async () => {
    assert.equal(await s.claimParticipation('r1', 'd2', 10), true);
    assert.equal(await s.claimParticipation('r1', 'd1', 11), true);
    assert.equal(await s.claimParticipation('r1', 'd2', 12), false);
    assert.equal(await s.claimParticipation('r2', 'd2', 13), true);
    assert.deepEqual(await s.participants('r1'), ['d1', 'd2']);
    assert.deepEqual(await s.participants('r3'), []);
  });

  it('keeps each replica’s newest partial sum and refuses a stale one', async () => {
    const a1 = Uint8Array.of(1, 2, 3);
    const a2 = Uint8Array.of(4, 5, 6, 7);
    assert.equal(await s.savePartialSum('r1', 'replica-a', a1, 2, 10), true);
    assert.equal(await s.savePartialSum('r1', 'replica-b', Uint8Array.of(9), 1, 11), true);
    assert.equal(await s.savePartialSum('r1', 'replica-a', a2, 5, 12), true);
    assert.equal(await s.savePartialSum('r1', 'replica-a', a1, 3, 13), false, 'fewer updates than stored: stale');
    assert.deepEqual(await s.partialSums('r1'), [
      { roundId: 'r1', replicaId: 'replica-a', bytes: a2, count: 5, updatedMs: 12 },
      { roundId: 'r1', replicaId: 'replica-b', bytes: Uint8Array.of(9), count: 1, updatedMs: 11 },
    ]);
    assert.equal(await s.deletePartialSums('r1'), 2);
    assert.deepEqual(await s.partialSums('r1'), []);
    await assert.rejects(s.savePartialSum('r1', 'a', a1, -1), RangeError);
    await assert.rejects(s.savePartialSum('r1', 'a', [1] as unknown as Uint8Array, 1), TypeError);
  });

  it('gives a lease to one holder until it expires or is released, bumping the epoch on each change of holder', async () => {
    assert.equal(await s.acquireLease('p', 'a', 1000, 0), true);
    assert.equal(await s.acquireLease('p', 'b', 1000, 500), false, 'held by a');
    assert.equal(await s.acquireLease('p', 'a', 1000, 900), true, 'the holder extends it');
    assert.deepEqual(await s.lease('p'), { programId: 'p', holder: 'a', expiresMs: 1900, epoch: 1 });
    assert.equal(await s.renewLease('p', 'a', 1000, 1000), true);
    assert.equal(await s.acquireLease('p', 'b', 1000, 1999), false);
    assert.equal(await s.acquireLease('p', 'b', 1000, 2000), true, 'expired at 2000');
    assert.equal(await s.renewLease('p', 'a', 1000, 2100), false, 'a lost it');
    assert.equal(await s.releaseLease('p', 'a'), false);
    assert.equal(await s.releaseLease('p', 'b'), true);
    assert.equal(await s.acquireLease('p', 'a', 1000, 2200), true, 'released: free at once');
    assert.equal((await s.lease('p'))?.epoch, 3);
    assert.equal(await s.lease('q'), undefined);
    await assert.rejects(s.acquireLease('p', 'a', 0), RangeError);
    await assert.rejects(s.acquireLease('p', '', 10), TypeError);
  });
});
