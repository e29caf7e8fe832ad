import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { firstValueFrom } from 'rxjs';
import { filter, take, toArray } from 'rxjs/operators';
import { Device } from '../../client/index.js';
import { decodeAdapter, evaluateLoss, FrozenBase } from '../../model/index.js';
import { programSpec, startCoordinator, type RoundEventRecord, type RunningCoordinator } from '../../server/index.js';
import { corpus, MODEL, realModel } from '../helpers.js';

const TOKEN = 'oz-partner-secret';

/** A small but real program: stories260K, rank-4 LoRA on wq/wv, a few steps per round. */
export function smallProgram(id: string, over: Record<string, unknown> = {}) {
  return programSpec({
    id,
    base: MODEL.bin,
    tokenizer: MODEL.tok,
    enrolmentToken: TOKEN,
    lora: { rank: 4, alpha: 8, targets: ['wq', 'wv', 'w2'], seed: 5 },
    training: { steps: 6, batchSize: 4, seqLen: 64, lr: 1e-2, quant: 'int8' },
    cohortSize: 3,
    minUpdates: 3,
    overSelect: 1,
    rounds: 2,
    roundDeadlineMs: 120_000,
    retryDelayMs: 200,
    ...over,
  });
}

describe('federation end to end over a real port', function () {
  this.timeout(300_000);
  let running: RunningCoordinator;
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-fed-'));

  after(async () => {
    await running?.shutdown(1000);
  });

  it('3 devices × 2 rounds: the global adapter improves held-out loss on their domain', async () => {
    const oz = corpus('wizard-of-oz.txt');
    const heldOut = oz.slice(Math.floor(oz.length * 0.9));
    running = await startCoordinator({ dataDir: join(dir, 'coord'), programs: [smallProgram('oz')], port: 0 });
    const events: RoundEventRecord[] = [];
    const sub = running.coordinator.program('oz').runner.events$.subscribe((e) => events.push(e));
    const shards = [0, 1, 2].map((i) => oz.slice(i * 60_000, (i + 1) * 60_000));
    const devices = shards.map((text, i) => new Device({ address: running.address, programId: 'oz', dataDir: join(dir, `dev${i}`), enrolmentToken: TOKEN, text: [text], seed: 10 + i, label: `reader-${i}` }));
    const summaries = await Promise.all(devices.map((d) => d.run()));
    devices.forEach((d) => d.close());
    sub.unsubscribe();
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
    const v = running.coordinator.store.latestVersion('oz');
    const bytes = readFileSync(join(dir, 'coord', 'blobs', v.sha256));
    const adapter = decodeAdapter(bytes, base);
    const tokens = tokenizer.encode(heldOut, false).subarray(0, 4096);
    const before = evaluateLoss(base, tokens, { context: 64 }).loss;
    const after = evaluateLoss(base, tokens, { context: 64, adapter }).loss;
    adapter.dispose();
    base.dispose();
    assert.ok(after < before - 0.05, `held-out Oz loss ${before.toFixed(4)} → ${after.toFixed(4)}`);
  });

  it('WatchRounds replays completed rounds to a late watcher and ends when the program is complete', async () => {
    const runner = running.coordinator.program('oz').runner;
    const replay = await firstValueFrom(runner.watch(0).pipe(filter((e) => e.state === 'COMPLETED'), take(2), toArray()));
    assert.deepEqual(replay.map((e) => e.roundNumber), [1, 2]);
  });
});
