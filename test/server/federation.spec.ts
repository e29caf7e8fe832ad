import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { filter, take, toArray } from 'rxjs/operators';
import { createServer, type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Device, type DeviceSummary } from '../../client/index.js';
import { loadProtos } from '../../proto/index.js';
import { decodeAdapter, evaluateLoss, FrozenBase } from '../../model/index.js';
import { startCoordinator, type RoundEventRecord, type RunningCoordinator } from '../../server/index.js';
import { corpus, realModel } from '../helpers.js';
import { runDevices, smallProgram, TOKEN } from './fixtures.js';

describe('federation end to end over a real port', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-fed-'));

  /** The shared work of the first two tests, done explicitly: 3 devices × 2 rounds on program "oz". */
  let running: RunningCoordinator;
  let summaries: DeviceSummary[];
  const events: RoundEventRecord[] = [];
  before(async () => {
    running = await startCoordinator({ dataDir: join(dir, 'coord'), programs: [smallProgram('oz')], port: 0 });
    const sub = running.coordinator.program('oz').runner.events$.subscribe((e) => events.push(e));
    summaries = await runDevices({ address: running.address, programId: 'oz', dir, ids: [0, 1, 2], shardChars: 60_000, options: (i) => ({ seed: 10 + i, label: `reader-${i}` }) });
    sub.unsubscribe();
  });
  after(async () => {
    await running?.shutdown(1000);
  });

  it('3 devices × 2 rounds: the global adapter improves held-out loss on their domain', async () => {
    const oz = corpus('wizard-of-oz.txt');
    const heldOut = oz.slice(Math.floor(oz.length * 0.9));
    for (const s of summaries) {
      assert.equal(s.updatesAccepted, 2, `device ${s.deviceId}: ${JSON.stringify(s)}`);
      assert.match(s.reason, /completed its 2 rounds/);
      assert.ok(s.bytesUp > 0 && s.bytesDown > 0);
    }
    const completed = events.filter((e) => e.state === 'COMPLETED');
    assert.deepEqual(completed.map((e) => [e.roundNumber, e.adapterVersion, e.updatesReceived]), [[1, 1, 3], [2, 2, 3]]);

    // the final global adapter, read back from the coordinator's blob store, beats the base on held-out Oz
    const { base: loaded, tokenizer } = await realModel();
    const base = new FrozenBase(loaded, 'int8');
    const v = await running.coordinator.store.latestVersion('oz');
    const bytes = readFileSync(join(dir, 'coord', 'blobs', v.sha256));
    const adapter = decodeAdapter(bytes, base);
    const tokens = tokenizer.encode(heldOut, { bos: false }).subarray(0, 4096);
    const before = evaluateLoss(base, tokens, { startId: tokenizer.startId, context: 64 }).loss;
    const after = evaluateLoss(base, tokens, { startId: tokenizer.startId, context: 64, adapter }).loss;
    adapter.dispose();
    base.dispose();
    assert.ok(after < before - 0.05, `held-out Oz loss ${before.toFixed(4)} → ${after.toFixed(4)}`);
  });

  it('WatchRounds over gRPC replays completed rounds to a late watcher and ends when the program is complete', async () => {
    const watcher = new Device({ address: running.address, programId: 'oz', dataDir: join(dir, 'watcher'), enrolmentToken: TOKEN, text: ['unused'] });
    const events = await firstValueFrom(watcher.watchRounds(0).pipe(toArray()));
    watcher.close();
    assert.deepEqual(
      events.map((e) => [e.roundNumber, e.state, Number(e.adapterVersion), e.updatesReceived]),
      [
        [1, 'ROUND_STATE_COMPLETED', 1, 3],
        [2, 'ROUND_STATE_COMPLETED', 2, 3],
      ],
    );
    assert.ok(events.every((e) => Number(e.bytesReceived) > 0 && e.devicesSelected === 3));
  });

  it('dropout below the minimum fails the round cleanly, leaves the adapter alone, and retries it', async () => {
    const r = await startCoordinator({ dataDir: join(dir, 'drop'), port: 0, programs: [smallProgram('drop', { rounds: 1, roundDeadlineMs: 12_000, retryDelayMs: 100 })] });
    try {
      const runner = r.coordinator.program('drop').runner;
      const events: RoundEventRecord[] = [];
      const sub = runner.events$.subscribe((e) => events.push(e));
      // two of the three devices the round needs show up, once each
      const sums = await runDevices({ address: r.address, programId: 'drop', dir, ids: [0, 1], options: () => ({ maxRounds: 1 }) });
      assert.deepEqual(sums.map((x) => x.updatesAccepted), [1, 1]);
      await firstValueFrom(runner.events$.pipe(filter((e) => e.state === 'OPEN' && e.roundId.endsWith('.a2'))));
      sub.unsubscribe();
      const failed = events.find((e) => e.state === 'FAILED');
      assert.ok(failed, JSON.stringify(events));
      assert.equal(failed.roundNumber, 1);
      assert.equal(failed.updatesReceived, 2);
      assert.match(failed.message, /2 update\(s\) by the close \(the deadline passed\), fewer than the minimum 3; retrying/);
      assert.equal(runner.current().version, 0);
      assert.equal((await r.coordinator.store.latestVersion('drop')).version, 0);
    } finally {
      await r.shutdown(500);
    }
  });

  it('an adapter larger than 4 MiB travels in chunks both ways', async () => {
    const r = await startCoordinator({
      dataDir: join(dir, 'big'),
      port: 0,
      programs: [smallProgram('big', { lora: { rank: 192, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] }, training: { steps: 1, batchSize: 1, seqLen: 16, lr: 1e-3 }, cohortSize: 1, minUpdates: 1, minContributors: 1, rounds: 1 })],
    });
    try {
      const p = r.coordinator.program('big');
      assert.ok(p.updateLength * 4 > 4 * 1024 * 1024, `update of ${p.updateLength * 4} bytes`);
      const d = new Device({ address: r.address, programId: 'big', dataDir: join(dir, 'big-dev'), enrolmentToken: TOKEN, text: [corpus('wizard-of-oz.txt').slice(0, 5000)], seed: 1 });
      const chunks: number[] = [];
      d.progress$.subscribe((e) => e.kind === 'downloaded' && e.what === 'adapter' && chunks.push(e.bytes));
      const s = await d.run();
      d.close();
      assert.equal(s.updatesAccepted, 1);
      assert.ok(s.bytesUp > 4 * 1024 * 1024 && chunks[0] > 4 * 1024 * 1024, JSON.stringify({ s, chunks }));
      assert.equal(p.runner.current().version, 1);
    } finally {
      await r.shutdown(500);
    }
  });

  it('a device started before its coordinator retries with backoff until the service is up; health says SERVING', async () => {
    // a port that is free now and nobody listens on yet
    const port = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const retries: number[] = [];
    const d = new Device({ address: `127.0.0.1:${port}`, programId: 'late', dataDir: join(dir, 'late-dev'), enrolmentToken: TOKEN, text: [corpus('wizard-of-oz.txt').slice(0, 20_000)], seed: 1, retry: { attempts: 20, baseMs: 100, maxMs: 400 } });
    d.progress$.subscribe((e) => e.kind === 'retry' && retries.push(e.attempt));
    // start the coordinator once the device has retried twice (it has no other way to reach it)
    const retriedTwice = firstValueFrom(d.progress$.pipe(filter((e) => e.kind === 'retry'), take(2), toArray()));
    const run = d.run();
    await Promise.race([retriedTwice, run.then((s) => assert.fail(`the device finished before its coordinator started: ${JSON.stringify(s)}`))]);
    const late = await startCoordinator({ dataDir: join(dir, 'late'), port, programs: [smallProgram('late', { cohortSize: 1, minUpdates: 1, minContributors: 1, rounds: 1 })] });
    try {
      const s = await run;
      assert.equal(s.updatesAccepted, 1);
      assert.ok(retries.length >= 2, `retried ${retries.length} times`);
      const { health } = loadProtos();
      const hc = new health.grpc.health.v1.Health(late.address, grpc.credentials.createInsecure());
      const status = await new Promise<string>((resolve, reject) => hc.Check({ service: 'fedtune.v1.Coordinator' }, (e, r) => (e ? reject(e) : resolve(r?.status as string))));
      await hc.close();
      assert.equal(status, 'SERVING');
    } finally {
      d.close();
      await late.shutdown(500);
    }
  });
});
