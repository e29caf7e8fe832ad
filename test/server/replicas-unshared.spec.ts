/**
 * Programs whose rounds stay on their driver when replicas share a PostgreSQL (secure
 * aggregation, fixed-cohort sampling): a follower forwards their round requests — check-in,
 * upload, SecAgg stages — to the driver through the database and relays its answers
 * (server/forwarding.ts), so it reports them SERVING as it does a shared program, and a device
 * that only ever reaches the follower takes part. Two coordinators in one process.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { authFor, unaryCall } from '../../client/rpc.js';
import { loadIdentity } from '../../client/identity.js';
import { loadProtos } from '../../proto/index.js';
import { openExecutor, startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { postgresOrSkip, type TestPostgres } from '../support/postgres.js';
import { runDevices, smallProgram } from './fixtures.js';

describe('server: programs whose rounds stay on their driver, served by every replica (PostgreSQL)', function () {
  this.timeout(120_000);
  let pg: TestPostgres | undefined;
  const running: RunningCoordinator[] = [];

  before(async function () {
    pg = await postgresOrSkip('unshared programs among replicas');
    if (!pg) this.skip();
  });

  after(async () => {
    for (const r of running) await r.shutdown(1000).catch(() => undefined);
    await pg?.stop();
  });

  it('a follower forwards their round requests to the driver and relays its answers (SERVING); the rounds complete there', async () => {
    const url = await (pg as TestPostgres).fresh();
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-unshared-'));
    const small = { lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 }, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' } };
    const programs = [
      smallProgram('fc', { ...small, cohortSize: 2, minUpdates: 2, rounds: 1, sampling: { scheme: 'fixed-cohort', selectionMs: 1500 } }),
      smallProgram('sa', { ...small, cohortSize: 3, minUpdates: 3, rounds: 1, secagg: { phaseTimeoutMs: 60_000 }, dp: { clipNorm: 0.5 } }),
      smallProgram('sh', { ...small, cohortSize: 2, minUpdates: 2, rounds: 1 }),
    ];
    const a = await startCoordinator({ dataDir: join(dir, 'a'), programs, store: url, blobs: 'postgres', replicaId: 'a' });
    running.push(a);
    const b = await startCoordinator({ dataDir: join(dir, 'b'), programs, store: url, blobs: 'postgres', replicaId: 'b' });
    running.push(b);
    const health = (r: RunningCoordinator, id: string) => r.health.status(`fedtune.v1.Coordinator/${id}`);
    assert.deepEqual(['fc', 'sa', 'sh'].map((id) => [health(a, id), health(b, id)]), [
      ['SERVING', 'SERVING'],
      ['SERVING', 'SERVING'],
      ['SERVING', 'SERVING'],
    ]);

    const retried: string[] = [];
    const summaries = await runDevices({
      address: '',
      programId: 'fc',
      dir: join(dir, 'dev'),
      ids: [0, 1],
      shardChars: 20_000,
      // device 0 only ever reaches the follower; device 1 both
      options: (i) => ({ address: i === 0 ? [b.address] : [b.address, a.address], maxWaitMs: 200, retry: { attempts: 6, baseMs: 20, maxMs: 200 } }),
      watch: (d) => d.progress$.subscribe((e) => e.kind === 'retry' && retried.push(e.details)),
    });
    assert.deepEqual(summaries.map((s) => s.updatesAccepted), [1, 1]);
    assert.deepEqual(retried.filter((m) => /driven by replica/.test(m)), [], 'no device was sent on to the driver');

    // a SecAgg stage request on the follower gets the driver's own answer: this program's round is over
    const id = loadIdentity(join(dir, 'dev', 'fc-0'));
    const deviceId = summaries[0].deviceId;
    const client = new (loadProtos().fedtune.fedtune.v1.Coordinator)(b.address, grpc.credentials.createInsecure());
    try {
      const req = { programId: 'fc', roundId: 'fc.r1.a1', getParams: true };
      await assert.rejects(
        unaryCall((o, cb) => client.SecAgg({ ...req, auth: authFor('fedtune.v1.Coordinator/SecAgg', req, deviceId, id.sign) }, o, cb), 5000),
        (e: grpc.ServiceError) => e.code === grpc.status.DEADLINE_EXCEEDED && /round fc\.r1\.a1 has closed/.test(e.details),
      );
      // a driver that does not answer (here: it stopped hearing forwarded requests): the follower gives up before the call's deadline
      await a.coordinator.forwarder?.close();
      const later = { programId: 'fc', adapterVersion: 0 };
      const t0 = Date.now();
      await assert.rejects(
        unaryCall((o, cb) => client.CheckIn({ ...later, auth: authFor('fedtune.v1.Coordinator/CheckIn', later, deviceId, id.sign) }, o, cb), 2000),
        (e: grpc.ServiceError) => e.code === grpc.status.UNAVAILABLE && /program "fc"'s driver did not answer this CheckIn \(forwarded by replica b\) in time/.test(e.details),
      );
      assert.ok(Date.now() - t0 >= 1500, 'the follower waited for the driver');
    } finally {
      client.close();
    }
    // its rows are gone (deleted by the follower that gave up)
    const db = await openExecutor(url);
    try {
      assert.equal((await db.get('SELECT COUNT(*) AS n FROM forwarded_requests'))?.n, 0);
    } finally {
      await db.close();
    }
  });
});
