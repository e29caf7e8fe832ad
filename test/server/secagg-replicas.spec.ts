/**
 * A secure aggregation round whose devices are spread over three coordinator replicas (separate
 * processes, one throwaway PostgreSQL): replica a drives the program; device 0 only ever talks to
 * follower b, device 1 only to follower c, device 2 holds all three addresses. Every check-in,
 * SecAgg stage and masked upload a follower gets is forwarded to the driver through the database
 * and its answer relayed (server/forwarding.ts). Checked against independent facts:
 *  - the SecAgg program's version 1 equals version 0 plus the plain mean of the same devices'
 *    updates — recomputed here in float64 from the updates a plain (shared-round) program stored
 *    in the database from the same devices (same seeds, same text, same initial adapter);
 *  - a SecAgg stage request replayed to another replica is refused (its nonce was claimed);
 *  - forwarded rows are deleted once answered; malformed rows are refused by the driver, which
 *    serves on; followers report the program SERVING.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { authFor, unaryCall } from '../../client/rpc.js';
import { loadIdentity } from '../../client/identity.js';
import { decodeAdapterFile } from '../../model/adapter-file.js';
import { adapterFlatFromTensors } from '../../model/adapter-flat.js';
import { readBaseInfo } from '../../model/base-info.js';
import { loadProtos } from '../../proto/index.js';
import { openExecutor, PostgresBlobBackend, programSpec, SqlStateStore } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { postgresOrSkip, type TestPostgres } from '../support/postgres.js';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { runDevices, TOKEN } from './fixtures.js';

const REPLICA = join(dirname(fileURLToPath(import.meta.url)), 'replica-process.js');

describe('server: a SecAgg round with devices on three replicas, forwarded to its driver (PostgreSQL)', function () {
  this.timeout(120_000);
  let pg: TestPostgres | undefined;
  const procs: CoordinatorProcess[] = [];

  before(async function () {
    pg = await postgresOrSkip('SecAgg across replicas');
    if (!pg) this.skip();
  });

  after(async () => {
    for (const p of procs) if (p.alive()) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await pg?.stop();
  });

  it('sums exactly what the devices sent, whichever replica they reach; a replayed stage request is refused', async () => {
    const url = await (pg as TestPostgres).fresh();
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-sar-'));
    const config = join(dir, 'programs.json');
    const plain = {
      id: 'plain',
      base: MODEL.bin,
      tokenizer: MODEL.tok,
      enrolmentToken: TOKEN,
      lora: { rank: 2, targets: ['wq', 'wv'], seed: 4 },
      training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2 },
      cohortSize: 3,
      minUpdates: 3,
      overSelect: 1,
      rounds: 1,
      roundDeadlineMs: 60_000,
      retryDelayMs: 100,
      dp: { clipNorm: 0.5 },
    };
    const sa = { ...plain, id: 'sa', secagg: { phaseTimeoutMs: 20_000 } };
    writeFileSync(config, JSON.stringify({ programs: [sa, plain] }));
    const replica = (id: string) =>
      startCoordinatorProcess(config, join(dir, id), { script: REPLICA, env: { FEDTUNE_TEST_REPLICA: JSON.stringify({ config, dataDir: join(dir, id), store: url, replicaId: id, leaseTtlMs: 15_000 }) } });
    // a starts alone, so it takes both programs' leases
    const a = await replica('a');
    procs.push(a);
    const [b, c] = await Promise.all([replica('b'), replica('c')]);
    procs.push(b, c);

    // followers serve the SecAgg program (health)
    const health = new (loadProtos().health.grpc.health.v1.Health)(b.address, grpc.credentials.createInsecure());
    try {
      const h = await unaryCall<{ status: string }>((o, cb) => health.Check({ service: 'fedtune.v1.Coordinator/sa' }, o, cb), 5000);
      assert.equal(h.status, 'SERVING');
    } finally {
      health.close();
    }

    const addresses = [[b.address], [c.address], [a.address, b.address, c.address]];
    const run = (programId: string) =>
      runDevices({
        address: '',
        programId,
        dir: join(dir, 'dev'),
        ids: [0, 1, 2],
        shardChars: 12_000,
        options: (i) => ({ address: addresses[i], seed: 100 + i, maxWaitMs: 100, retry: { attempts: 6, baseMs: 50, maxMs: 500 } }),
      });
    const secure = await run('sa');
    assert.deepEqual(
      secure.map((s) => s.updatesAccepted),
      [1, 1, 1],
      JSON.stringify(secure.map((s) => s.reason)),
    );
    const plainRun = await run('plain');
    assert.deepEqual(
      plainRun.map((s) => s.updatesAccepted),
      [1, 1, 1],
    );

    // a SecAgg stage request, sent to follower b (forwarded: the driver answers), then replayed to a and c
    const id = loadIdentity(join(dir, 'dev', 'sa-0'));
    const req = { programId: 'sa', roundId: 'sa.r1.a1', getParams: true };
    const signedReq = { ...req, auth: authFor('fedtune.v1.Coordinator/SecAgg', req, secure[0].deviceId, id.sign) };
    const Client = loadProtos().fedtune.fedtune.v1.Coordinator;
    const send = async (p: CoordinatorProcess): Promise<grpc.ServiceError> => {
      const client = new Client(p.address, grpc.credentials.createInsecure());
      try {
        return await unaryCall((o, cb) => client.SecAgg(signedReq, o, cb), 5000).then(
          () => assert.fail('a SecAgg request for a closed round was answered'),
          (e: grpc.ServiceError) => e,
        );
      } finally {
        client.close();
      }
    };
    const first = await send(b);
    // the driver's own answer (the round is over), relayed as it gave it
    assert.equal(first.code, grpc.status.DEADLINE_EXCEEDED, first.details);
    assert.match(first.details, /round sa\.r1\.a1 has closed/);
    for (const p of [c, a]) {
      const again = await send(p);
      assert.equal(again.code, grpc.status.UNAUTHENTICATED, again.details);
      assert.match(again.details, /replayed nonce/);
    }

    const db = await openExecutor(url);
    const store = new SqlStateStore(db);
    try {
      assert.deepEqual(
        (await store.rounds('sa')).map((r) => [r.state, r.updates]),
        [['completed', 3]],
      );
      const [plainRound] = await store.rounds('plain');
      assert.equal(plainRound.state, 'completed');
      const rows = await store.roundUpdates(plainRound.roundId);
      assert.deepEqual(rows.map((u) => u.deviceId).sort(), plainRun.map((s) => s.deviceId).sort());
      assert.equal((await db.get('SELECT COUNT(*) AS n FROM forwarded_requests'))?.n, 0, 'every forwarded row was deleted once answered');

      // malformed forwarded rows (written straight into the database) are refused by the driver, which serves on
      const ask = async (method: string, deviceId: string, request: Uint8Array): Promise<{ code: number; details: string }> => {
        const rowId = `test-${method}-${deviceId}-${request.length}`;
        // the driver NOTIFYs once it has written its answer: wait for that, not the clock
        let answered!: () => void;
        const heard = new Promise<void>((resolve) => (answered = resolve));
        const stop = await store.onForward((n) => {
          if (n.kind === 'answer' && n.id === rowId) answered();
        });
        await store.forwardRequest({ id: rowId, programId: 'sa', method, deviceId, request, payload: new Uint8Array(0), fromReplica: 'test', deadlineMs: Date.now() + 10_000 });
        try {
          await heard;
          return (await store.forwardedAnswer(rowId)) ?? assert.fail(`the driver announced no answer to the ${method} row`);
        } finally {
          await stop();
          await store.deleteForwarded(rowId);
        }
      };
      const codec = loadProtos().definition['fedtune.v1.Coordinator'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer }>;
      const fresh = { ...req, auth: authFor('fedtune.v1.Coordinator/SecAgg', req, secure[0].deviceId, id.sign) };
      const refusals = [
        await ask('Enroll', secure[0].deviceId, codec.SecAgg.requestSerialize(fresh)),
        await ask('SecAgg', secure[0].deviceId, Buffer.from([0xff, 0xff, 0xff, 0x07, 0x01])),
        await ask('SecAgg', secure[1].deviceId, codec.SecAgg.requestSerialize(fresh)),
        await ask('SecAgg', 'no-such-device', codec.SecAgg.requestSerialize({ ...fresh, auth: { ...fresh.auth, deviceId: 'no-such-device' } })),
        await ask('UploadUpdate', secure[0].deviceId, codec.UploadUpdate.requestSerialize({ data: Buffer.alloc(4) })),
      ];
      assert.deepEqual(
        refusals.map((r) => r.code),
        [grpc.status.INVALID_ARGUMENT, grpc.status.INVALID_ARGUMENT, grpc.status.INVALID_ARGUMENT, grpc.status.UNAUTHENTICATED, grpc.status.INVALID_ARGUMENT],
        JSON.stringify(refusals),
      );
      assert.match(refusals[0].details, /method "Enroll", which is not forwarded/);
      assert.match(refusals[2].details, /names device .* but its request is signed by/);
      // the driver still answers (a well-formed row: the driver's refusal of a stage of a closed round)
      const ok = await ask('SecAgg', secure[0].deviceId, codec.SecAgg.requestSerialize(fresh));
      assert.equal(ok.code, grpc.status.DEADLINE_EXCEEDED, ok.details);
      assert.ok(a.alive(), 'the driver is alive');

      const base = readBaseInfo(MODEL.bin);
      const blobs = new PostgresBlobBackend(db);
      const values = async (programId: string, v: number): Promise<Float32Array> => {
        const rec = await store.version(programId, v);
        assert.ok(rec && (await blobs.verify(rec.sha256)), `${programId} version ${v} is stored and verifies`);
        const parts: Uint8Array[] = [];
        for await (const ch of blobs.readChunks(rec.sha256)) parts.push(ch.data);
        return adapterFlatFromTensors(base.config, programSpec(sa).lora, decodeAdapterFile(Buffer.concat(parts)).tensors);
      };
      const v0 = await values('sa', 0);
      const v1 = await values('sa', 1);
      const total = rows.reduce((t, u) => t + u.weight, 0);
      let worst = 0;
      let moved = 0;
      for (let i = 0; i < v0.length; i++) {
        let s = 0;
        for (const u of rows) s += u.weight * u.update[i];
        const mean = s / total;
        moved = Math.max(moved, Math.abs(mean));
        worst = Math.max(worst, Math.abs(v1[i] - (v0[i] + mean)));
      }
      assert.ok(moved > 1e-4, 'the round changed the adapter');
      assert.ok(worst < 1e-6, `the secure aggregate is ${worst} from the plain mean of the same devices' updates`);
    } finally {
      await store.close();
    }
  });
});
