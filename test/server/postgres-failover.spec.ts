/**
 * Driver failover on PostgreSQL, as real processes: three coordinators share a throwaway database
 * with a short program lease. A non-driving replica is killed (SIGKILL) during round 1, which
 * completes regardless; the driver is killed after round 1; a survivor takes the lease once it
 * expires, continues the round the dead driver left open (its rounds are shared: admissions and
 * updates are in the database), and runs round 2 for the same devices from the adapter round 1
 * published.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { unaryCall } from '../../client/index.js';
import { loadProtos } from '../../proto/index.js';
import type { HealthCheckResponse__Output } from '../../proto/generated/grpc/health/v1/HealthCheckResponse.js';
import { openStateStore } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { postgresOrSkip, type TestPostgres } from '../support/postgres.js';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { runDevices, TOKEN } from './fixtures.js';

describe('server: a program’s driver dies, another coordinator process takes its lease (PostgreSQL)', function () {
  this.timeout(120_000);
  let pg: TestPostgres | undefined;
  const procs: CoordinatorProcess[] = [];

  before(async function () {
    pg = await postgresOrSkip('driver failover on PostgreSQL');
    if (!pg) this.skip();
  });

  after(async () => {
    for (const p of procs) if (p.alive()) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await pg?.stop();
  });

  it('round 2 runs on the survivor, from version 1; an open round the dead driver left is failed, nothing completed is lost', async () => {
    const url = await (pg as TestPostgres).fresh();
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-pgfail-'));
    const config = join(dir, 'program.json');
    const program = {
      id: 'fo',
      base: MODEL.bin,
      tokenizer: MODEL.tok,
      enrolmentToken: TOKEN,
      lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 },
      training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' },
      cohortSize: 2,
      minUpdates: 2,
      minContributors: 2,
      overSelect: 1,
      rounds: 2,
      roundDeadlineMs: 60_000,
      retryDelayMs: 100,
    };
    writeFileSync(config, JSON.stringify({ programs: [program] }));
    const args = (name: string) => ['--store', url, '--blobs', 'postgres', '--lease-ms', '3000', '--replica-id', name];
    const a = await startCoordinatorProcess(config, join(dir, 'a'), { args: args('a') });
    procs.push(a);
    const b = await startCoordinatorProcess(config, join(dir, 'b'), { args: args('b') });
    procs.push(b);
    const c = await startCoordinatorProcess(config, join(dir, 'c'), { args: args('c') });
    procs.push(c);
    /** The program's health on a process (SERVING on every replica: its rounds are shared). */
    const health = async (p: CoordinatorProcess): Promise<string> => {
      const client = new (loadProtos().health.grpc.health.v1.Health)(p.address, grpc.credentials.createInsecure());
      try {
        return (await unaryCall<HealthCheckResponse__Output>((o, cb) => client.Check({ service: 'fedtune.v1.Coordinator/fo' }, o, cb), 5000)).status;
      } finally {
        client.close();
      }
    };
    assert.deepEqual([await health(a), await health(b), await health(c)], ['SERVING', 'SERVING', 'SERVING'], 'a balancer may send the devices to any replica');
    const run = (address: string, maxRounds?: number) => runDevices({ address, programId: 'fo', dir: join(dir, 'dev'), ids: [0, 1], shardChars: 20_000, options: () => ({ maxRounds, maxWaitMs: 200 }) });

    const round1 = run(a.address, 1);
    // mid-round: the non-driving replica c dies
    c.child.kill('SIGKILL');
    assert.equal(await c.exited, 137);
    const first = await round1;
    assert.deepEqual(first.map((s) => s.updatesAccepted), [1, 1]);
    a.child.kill('SIGKILL');
    await a.exited;

    const rest = await run(b.address);
    assert.ok(rest.every((s) => /completed its 2 rounds/.test(s.reason)), JSON.stringify(rest));
    const taken = b.lines.find((l) => l.msg === 'program lease taken: this replica drives its rounds');
    assert.ok(taken, 'b logs that it took the program over');
    assert.equal(taken.version, 1, 'b starts from the version round 1 published');
    assert.equal(await health(b), 'NOT_SERVING', 'the program is over');
    // b opened round 2, or continued the attempt a opened before it died (its admissions are in the database)
    assert.ok(b.lines.some((l) => (l.msg === 'round open' || l.msg === 'round resumed by a new driver') && l.round === 2), 'b drove round 2');
    assert.ok(b.lines.some((l) => l.msg === 'round completed' && l.round === 2), 'b completed round 2');

    const store = await openStateStore(url);
    try {
      const all = await store.rounds('fo');
      assert.deepEqual(all.filter((r) => r.state === 'completed').map((r) => [r.roundNumber, r.adapterVersion]), [[1, 1], [2, 2]]);
      // a opens round 2 right after round 1 completes: if it did before the kill, b failed that attempt when it took over
      const failed = all.filter((r) => r.state === 'failed');
      assert.ok(failed.length <= 1, JSON.stringify(failed));
      for (const r of failed) assert.deepEqual([r.roundNumber, r.attempt, r.adapterVersion, r.message], [2, 1, 1, 'the coordinator restarted while the round was open']);
      assert.equal(all.filter((r) => r.state === 'open').length, 0);
      assert.equal((await store.lease('fo'))?.holder, 'b');
      assert.equal((await store.latestVersion('fo')).version, 2);
    } finally {
      await store.close();
    }
  });
});
