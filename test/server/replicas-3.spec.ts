/**
 * Three coordinator replicas as separate processes on one throwaway PostgreSQL, six real devices
 * spread across them (each holds the three addresses, rotated), local DP with Poisson sampling
 * (q = 1) so every round is charged to the privacy ledger. Mid-round (1 or 2): the non-driving replica c is
 * killed (SIGKILL) while a device it admitted trains; it uploads elsewhere. Round 2: the driver a
 * kills itself right after the round's privacy spend is on disk, while aggregating; b takes the
 * lease and continues that round from the database. Checked against independent facts:
 *  - every update a device was told was accepted is stored with its round, and every round that
 *    failed did so by its own rule (too few updates), never for a replica's death;
 *  - each version is the previous one plus the mean of exactly its round's stored updates
 *    (recomputed here in float64; under DP every update weighs 1);
 *  - every completed round has its ledger row (the ledger never under-counts), and none twice;
 *  - a signed request replayed to another replica is refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import type { Device } from '../../client/index.js';
import { decodeAdapterFile } from '../../model/adapter-file.js';
import { adapterFlatFromTensors } from '../../model/adapter-flat.js';
import { readBaseInfo } from '../../model/base-info.js';
import { openExecutor, PostgresBlobBackend, programSpec, SqlStateStore } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { enrollRequest, parseFields, RawClient, signed, str } from '../proto/raw-wire.js';
import { postgresOrSkip, type TestPostgres } from '../support/postgres.js';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { runDevices, TOKEN } from './fixtures.js';

const REPLICA = join(dirname(fileURLToPath(import.meta.url)), 'replica-process.js');
const M = (method: string): string => `/fedtune.v1.Coordinator/${method}`;
const N = 6;

describe('server: three replicas share a program’s rounds; replicas die mid-round and mid-aggregation (PostgreSQL)', function () {
  this.timeout(120_000);
  let pg: TestPostgres | undefined;
  const procs: CoordinatorProcess[] = [];

  before(async function () {
    pg = await postgresOrSkip('three replicas sharing rounds');
    if (!pg) this.skip();
  });

  after(async () => {
    for (const p of procs) if (p.alive()) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await pg?.stop();
  });

  it('completes every round with every acknowledged update, the adapter as recomputed from the stored updates, the ledger complete', async () => {
    const url = await (pg as TestPostgres).fresh();
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-r3-'));
    const config = join(dir, 'programs.json');
    const program = {
      id: 'r3',
      base: MODEL.bin,
      tokenizer: MODEL.tok,
      enrolmentToken: TOKEN,
      lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 },
      training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' },
      cohortSize: N,
      minUpdates: 2,
      minContributors: 2,
      overSelect: 1,
      rounds: 3,
      roundDeadlineMs: 60_000,
      retryDelayMs: 100,
      dp: { mode: 'local', clipNorm: 0.5, noiseMultiplier: 0.3, delta: 1e-5, population: N },
      // the selection closes once every enrolled device has checked in (on any replica), or after 20 s
      sampling: { scheme: 'poisson', rate: 1, selectionMs: 20_000 },
    };
    // the replay check's device enrols in a program of its own (it would hold a place in r3's rounds)
    writeFileSync(config, JSON.stringify({ programs: [program, { ...program, id: 'rp', rounds: 1, dp: undefined, sampling: undefined, cohortSize: 2, minUpdates: 2 }] }));
    const replica = (id: string, killAtLedgerRound?: number) =>
      startCoordinatorProcess(config, join(dir, id), { script: REPLICA, env: { FEDTUNE_TEST_REPLICA: JSON.stringify({ config, dataDir: join(dir, id), store: url, replicaId: id, leaseTtlMs: 1500, killAtLedgerRound }) } });
    const a = await replica('a', 2);
    procs.push(a);
    const b = await replica('b');
    procs.push(b);
    const c = await replica('c');
    procs.push(c);

    // a signed enrolment and check-in, replayed to another replica: refused as replays
    const raw = [a, b, c].map((p) => new RawClient(p.address));
    try {
      const sign = nacl.sign.keyPair();
      const enrol = enrollRequest('rp', TOKEN, sign, nacl.box.keyPair().publicKey);
      const e = await raw[0].unary('Enroll', enrol);
      assert.equal(e.code, grpc.status.OK, e.details);
      const deviceId = (parseFields(e.messages[0]).get(1) as Buffer).toString('utf8');
      const enrolAgain = await raw[2].unary('Enroll', enrol);
      assert.equal(enrolAgain.code, grpc.status.UNAUTHENTICATED, enrolAgain.details);
      const checkIn = signed(M('CheckIn'), 'rp', deviceId, str(2, 'rp'), sign.secretKey);
      const first = await raw[1].unary('CheckIn', checkIn);
      assert.equal(first.code, grpc.status.OK, first.details);
      for (const r of [raw[0], raw[2]]) {
        const again = await r.unary('CheckIn', checkIn);
        assert.equal(again.code, grpc.status.UNAUTHENTICATED, again.details);
        assert.match(again.details, /replayed nonce/);
      }
    } finally {
      for (const r of raw) r.close();
    }

    const acked = new Set<string>();
    const order = [a, b, c];
    let cKilled = false;
    /** The device training under c when c died, and its round. */
    let orphan = '';
    const watch = (d: Device, i: number) =>
      d.progress$.subscribe((ev) => {
        if (ev.kind === 'uploaded') acked.add(`${ev.roundId} ${i}`);
        // mid-round (1, or 2 if the device was not in round 1's selection): a device that checked in at c trains; c dies under it
        if (ev.kind === 'training' && !cKilled && i % 3 === 2) {
          cKilled = true;
          orphan = `${ev.roundId} ${i}`;
          c.child.kill('SIGKILL');
        }
      });
    const deviceIds: string[] = [];
    const summaries = await runDevices({
      address: '',
      programId: 'r3',
      dir: join(dir, 'dev'),
      ids: Array.from({ length: N }, (_, i) => i),
      shardChars: 8_000,
      watch,
      options: (i) => ({ address: [0, 1, 2].map((k) => order[(i + k) % 3].address), maxWaitMs: 200, retry: { attempts: 10, baseMs: 50, maxMs: 1000 } }),
    });
    for (const s of summaries) deviceIds.push(s.deviceId);
    assert.ok(cKilled, 'c was killed mid-round');
    assert.ok(acked.has(orphan), `the device c admitted (${orphan}) had its update accepted by another replica`);
    assert.equal(await c.exited, 137);
    assert.equal(await a.exited, 137, 'a killed itself while aggregating round 2');
    assert.ok(summaries.every((s) => /completed its 3 rounds/.test(s.reason)), JSON.stringify(summaries.map((s) => s.reason)));
    assert.ok(a.lines.some((l) => l.msg === 'killing myself while aggregating' && l.round === 2));
    assert.ok(b.lines.some((l) => l.msg === 'round resumed by a new driver' && l.round === 2), 'b continued round 2 from the database');

    const db = await openExecutor(url);
    const store = new SqlStateStore(db);
    try {
      const rounds = await store.rounds('r3');
      const completed = rounds.filter((r) => r.state === 'completed');
      assert.deepEqual(completed.map((r) => [r.roundNumber, r.adapterVersion]), [[1, 1], [2, 2], [3, 3]]);
      assert.equal(rounds.filter((r) => r.state === 'open').length, 0);

      // every acknowledged update is stored with its round (durable before the ack), whatever the
      // round's fate; a round fails only by its own rule (too few updates by its close — the
      // selection may close before late enrolments check in), never for a replica's death
      const stored = new Set<string>();
      const aggregated = new Set<string>();
      const replicasUsed = new Set<string>();
      const rowsOf = new Map<string, Awaited<ReturnType<typeof store.roundUpdates>>>();
      for (const r of rounds) {
        const rows = await store.roundUpdates(r.roundId);
        rowsOf.set(r.roundId, rows);
        assert.equal(rows.length, r.updates, `round ${r.roundId}: the round counts the updates it stored`);
        for (const u of rows) {
          stored.add(`${r.roundId} ${deviceIds.indexOf(u.deviceId)}`);
          if (r.state === 'completed') aggregated.add(`${r.roundId} ${deviceIds.indexOf(u.deviceId)}`);
          replicasUsed.add(u.replicaId);
        }
        if (r.state === 'failed') assert.match(r.message, /fewer than the minimum/, `round ${r.roundId} failed by its rule only`);
      }
      const what = `rounds: ${JSON.stringify(rounds.map((r) => [r.roundId, r.state, r.updates, r.message]))}; stored: ${[...stored].join(', ')}`;
      assert.deepEqual([...acked].filter((k) => !stored.has(k)), [], `every acknowledged update is stored; ${what}`);
      assert.ok([...acked].filter((k) => aggregated.has(k)).length >= 3 * 2, `acknowledged updates were aggregated; ${what}`);
      assert.ok(acked.size >= 3 * 3, `devices were told of ${acked.size} accepted updates`);
      const resumed = b.lines.find((l) => l.msg === 'round resumed by a new driver' && l.round === 2);
      assert.equal(rounds.find((r) => r.roundId === resumed?.roundId)?.state, 'completed', 'the round the driver died aggregating completed on its successor');
      assert.ok(replicasUsed.size >= 2, `updates were accepted by ${[...replicasUsed].join(', ')}`);

      // each version = the previous + the mean of its round's stored updates (weight 1 each under DP)
      const base = readBaseInfo(MODEL.bin);
      const spec = programSpec(program);
      const blobs = new PostgresBlobBackend(db);
      const values = async (v: number): Promise<Float32Array> => {
        const rec = await store.version('r3', v);
        assert.ok(rec && (await blobs.verify(rec.sha256)), `version ${v} is stored and verifies`);
        const parts: Uint8Array[] = [];
        for await (const ch of blobs.readChunks(rec.sha256)) parts.push(ch.data);
        return adapterFlatFromTensors(base.config, spec.lora, decodeAdapterFile(Buffer.concat(parts)).tensors);
      };
      let prev = await values(0);
      for (const r of completed) {
        // (a round dropped by its rule leaves its updates out: the next version starts from the previous one)
        const rows = rowsOf.get(r.roundId) ?? [];
        const next = await values(r.adapterVersion);
        let worst = 0;
        for (let i = 0; i < prev.length; i++) {
          let s = 0;
          for (const u of rows) s += u.weight * u.update[i];
          worst = Math.max(worst, Math.abs(next[i] - (prev[i] + s / rows.reduce((t, u) => t + u.weight, 0))));
        }
        assert.ok(worst < 1e-5, `round ${r.roundNumber}: version ${r.adapterVersion} is ${worst} from the recomputed mean`);
        prev = next;
      }

      // the ledger: one row per completed round at least, none twice (its key is the round id)
      const ledger = await store.ledger('r3');
      const charged = new Set(ledger.map((e) => e.roundId));
      assert.equal(charged.size, ledger.length);
      for (const r of completed) assert.ok(charged.has(r.roundId), `round ${r.roundNumber} was charged before its release`);
    } finally {
      await store.close();
    }
  });
});
