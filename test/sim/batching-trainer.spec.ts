import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Device } from '../../client/index.js';
import { FrozenBase, LocalTrainer, LoraAdapter, type TrainOptions } from '../../model/index.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { BatchingTrainer } from '../../sim/batching-trainer.js';
import { smallProgram, TOKEN } from '../server/fixtures.js';
import { corpus, maxAbsDiff, realModel } from '../helpers.js';

describe('sim/batching-trainer', function () {
  this.timeout(300_000);

  it('concurrent requests train as one cohort; each device gets its own result, equal to its LocalTrainer run', async () => {
    const { base: loaded, tokenizer } = await realModel();
    const base = new FrozenBase(loaded, 'int8');
    const data = [0, 1, 2].map((k) => tokenizer.encode(corpus('wizard-of-oz.txt').slice(k * 15_000, (k + 1) * 15_000), { bos: false }));
    const opts = (k: number): TrainOptions => ({ startId: tokenizer.startId, steps: 2 + k, batchSize: 2, seqLen: 32, lr: 1e-2, seed: k });
    const fresh = (): LoraAdapter => LoraAdapter.create(base.config, base.sha256, { rank: 2, targets: ['wq', 'w2'], seed: 1 });
    const solo: Float32Array[] = [];
    for (let k = 0; k < 3; k++) {
      const ad = fresh();
      await new LocalTrainer(base, ad, data[k], opts(k)).run();
      solo.push(ad.toFlat());
      ad.dispose();
    }
    const n0 = tf.memory().numTensors;
    const batching = new BatchingTrainer({ maxCohort: 2 });
    const ads = [fresh(), fresh(), fresh()];
    const trainers = ads.map((ad, k) => batching.factory(base, ad, data[k], opts(k)));
    const steps = [0, 0, 0];
    trainers.forEach((t, k) => t.progress$.subscribe((p) => (steps[k] = p.step)));
    const results = await Promise.all(trainers.map((t) => t.run()));
    assert.deepEqual(results.map((r) => r.steps), [2, 3, 4]);
    assert.deepEqual(steps, [2, 3, 4]);
    ads.forEach((ad, k) => assert.ok(maxAbsDiff(ad.toFlat(), solo[k]) <= 1e-6, `device ${k}`));
    // two of them in the first cohort (maxCohort), the third in the next
    assert.deepEqual(batching.stats(), { cohorts: 2, runs: 3, alone: 0, largest: 2 });
    // a run that needs checkpointing trains alone; bad arguments throw at once, as LocalTrainer's do
    const alone = batching.factory(base, ads[0], data[0], { ...opts(0), checkpoint: true });
    assert.ok(alone instanceof LocalTrainer);
    assert.throws(() => batching.factory(base, ads[0], data[0], { ...opts(0), lr: -1 }), /BatchingTrainer: lr must be a positive number/);
    // a time budget counts from run(): requests that waited it out in the queue train no step
    const slow = new BatchingTrainer({ lingerMs: 80 });
    const before = ads.map((a) => a.toFlat());
    const late = await Promise.all(ads.map((ad, k) => slow.factory(base, ad, data[k], { ...opts(k), timeBudgetMs: k < 2 ? 20 : undefined }).run()));
    assert.deepEqual(late.map((r) => [r.steps, r.stoppedByBudget]), [[0, true], [0, true], [4, false]]);
    assert.deepEqual(ads[0].toFlat(), before[0]);
    assert.notDeepEqual(ads[2].toFlat(), before[2]);
    ads.forEach((a) => a.dispose());
    assert.equal(tf.memory().numTensors, n0);
    base.dispose();
  });

  it('Devices given the factory publish the adapter that LocalTrainer devices publish (two coordinators, same program)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-batching-'));
    const program = () => smallProgram('batch', { cohortSize: 3, minUpdates: 3, minContributors: 3, rounds: 1, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2, quant: 'int8' } });
    const coordinators: RunningCoordinator[] = [];
    for (const name of ['solo', 'batched']) coordinators.push(await startCoordinator({ dataDir: join(dir, name), programs: [program()], port: 0 }));
    const batching = new BatchingTrainer({ lingerMs: 1000 });
    try {
      const published = await Promise.all(
        coordinators.map(async (running, c) => {
          const summaries = await Promise.all(
            [0, 1, 2].map(async (i) => {
              const text = corpus('wizard-of-oz.txt').slice(i * 20_000, (i + 1) * 20_000);
              const d = new Device({ address: running.address, programId: 'batch', dataDir: join(dir, `d${c}-${i}`), enrolmentToken: TOKEN, text: [text], seed: 10 + i, maxRounds: 1, trainer: c === 1 ? batching.factory : undefined });
              try {
                return await d.run();
              } finally {
                d.close();
              }
            }),
          );
          summaries.forEach((s) => assert.equal(s.updatesAccepted, 1, JSON.stringify(s)));
          return running.coordinator.program('batch').runner.current().global;
        }),
      );
      assert.ok(maxAbsDiff(published[0], published[1]) <= 1e-6, `published adapters differ by ${maxAbsDiff(published[0], published[1])}`);
      assert.ok(published[0].some((v) => v !== 0), 'the round moved the adapter');
      // the three devices' requests arrive within the linger time: one cohort
      assert.deepEqual(batching.stats(), { cohorts: 1, runs: 3, alone: 0, largest: 3 });
      assert.throws(() => new Device({ address: 'x:1', programId: 'p', dataDir: join(dir, 'bad'), enrolmentToken: TOKEN, text: ['a'], trainer: 1 as never }), /Device: options.trainer must be a function/);
    } finally {
      for (const c of coordinators) await c.shutdown(500);
    }
  });
});
