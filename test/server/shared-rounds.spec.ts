/**
 * Rounds every replica serves (issue 13 phase 2b), in one process for speed: two coordinators on
 * one throwaway PostgreSQL, real devices, one checking in and uploading through the driver and
 * one through the follower. Checked against what does not come from the code under test: the
 * published adapter equals version 0 plus the example-weighted mean of the updates the database
 * holds (recomputed here in float64), those updates are exactly the ones devices were told were
 * accepted, and each was stored by the replica the device talked to.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom, timeout, toArray } from 'rxjs';
import type { Device } from '../../client/index.js';
import { decodeAdapterFile } from '../../model/adapter-file.js';
import { adapterFlatFromTensors } from '../../model/adapter-flat.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { postgresOrSkip, type TestPostgres } from '../support/postgres.js';
import { runDevices, smallProgram } from './fixtures.js';

async function adapterValues(c: RunningCoordinator, programId: string, version: number): Promise<Float32Array> {
  const co = c.coordinator;
  const rec = await co.store.version(programId, version);
  assert.ok(rec, `version ${version}`);
  const parts: Uint8Array[] = [];
  for await (const ch of co.blobBackend.readChunks(rec.sha256)) parts.push(ch.data);
  const p = co.program(programId);
  return adapterFlatFromTensors(p.base.config, p.spec.lora, decodeAdapterFile(Buffer.concat(parts)).tensors);
}

describe('server: rounds every replica serves (two coordinators, one PostgreSQL)', function () {
  this.timeout(120_000);
  let pg: TestPostgres | undefined;
  const running: RunningCoordinator[] = [];

  before(async function () {
    pg = await postgresOrSkip('rounds every replica serves');
    if (!pg) this.skip();
  });

  after(async () => {
    for (const r of running) await r.shutdown(1000).catch(() => undefined);
    await pg?.stop();
  });

  it('takes updates through the driver and a follower into one round; the adapter is the mean of exactly the acknowledged updates', async () => {
    const url = await (pg as TestPostgres).fresh();
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-shared-'));
    const spec = smallProgram('sh', { cohortSize: 2, minUpdates: 2, rounds: 1, lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 }, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' } });
    const a = await startCoordinator({ dataDir: join(dir, 'a'), programs: [spec], store: url, blobs: 'postgres', replicaId: 'a' });
    running.push(a);
    const b = await startCoordinator({ dataDir: join(dir, 'b'), programs: [spec], store: url, blobs: 'postgres', replicaId: 'b' });
    running.push(b);
    assert.equal(a.coordinator.drives('sh'), true);
    assert.equal(b.coordinator.drives('sh'), false);
    // health: SERVING on both (a balancer spreads the program's devices over them)
    assert.deepEqual([a.health.status('fedtune.v1.Coordinator/sh'), b.health.status('fedtune.v1.Coordinator/sh')], ['SERVING', 'SERVING']);

    const acked: string[] = [];
    const watch = (d: Device, i: number) => d.progress$.subscribe((e) => e.kind === 'uploaded' && acked.push(`${e.roundId}/${i}`));
    const summaries = await runDevices({ address: '', programId: 'sh', dir: join(dir, 'dev'), ids: [0, 1], shardChars: 20_000, watch, options: (i) => ({ address: [a, b][i].address, maxWaitMs: 200 }) });
    assert.deepEqual(summaries.map((s) => s.updatesAccepted), [1, 1]);
    assert.ok(summaries.every((s) => /completed its 1 rounds/.test(s.reason)), JSON.stringify(summaries));
    assert.equal(b.coordinator.lastSeen.size, 1, 'device 1 talked to the follower only');

    // the follower's watchers hear the round its driver completed (WatchRounds on any replica), and its stream ends with the program
    const seen = await firstValueFrom(b.coordinator.program('sh').runner.watch(0).pipe(toArray(), timeout(10_000)));
    assert.deepEqual(seen.map((e) => [e.roundNumber, e.state, e.adapterVersion]), [[1, 'COMPLETED', 1]]);
    assert.equal(b.health.status('fedtune.v1.Coordinator/sh'), 'NOT_SERVING', 'the program is over on the follower too');

    const store = a.coordinator.store;
    const [round] = (await store.rounds('sh')).filter((r) => r.state === 'completed');
    assert.ok(round, 'round 1 completed');
    assert.equal(round.updates, 2);
    const rows = await store.roundUpdates(round.roundId);
    assert.deepEqual(rows.map((r) => r.replicaId).sort(), ['a', 'b'], 'each update was stored by the replica its device reached');
    const deviceIndex = (id: string): number => [a, b].findIndex((c) => c.coordinator.lastSeen.has(id));
    assert.deepEqual(rows.map((r) => `${round.roundId}/${deviceIndex(r.deviceId)}`).sort(), acked.sort(), 'the stored updates are exactly the acknowledged ones');

    // independent FedAvg (η = 1): v1 = v0 + Σ wᵢ uᵢ / Σ wᵢ, in float64
    const v0 = await adapterValues(a, 'sh', 0);
    const v1 = await adapterValues(b, 'sh', 1);
    const total = rows.reduce((t, r) => t + r.weight, 0);
    assert.ok(total > 0);
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < v0.length; i++) {
      let s = 0;
      for (const r of rows) s += r.weight * r.update[i];
      const want = v0[i] + s / total;
      worst = Math.max(worst, Math.abs(v1[i] - want));
      moved = Math.max(moved, Math.abs(v1[i] - v0[i]));
    }
    assert.ok(moved > 1e-4, 'the round moved the adapter');
    assert.ok(worst <= 1e-6 * Math.max(1, moved), `v1 differs from the recomputed mean by ${worst}`);
  });
});
