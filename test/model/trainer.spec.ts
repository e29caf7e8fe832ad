import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { evaluateLoss, FrozenBase, logitsFor, LocalTrainer, LoraAdapter, type TrainProgress } from '../../model/index.js';
import { corpus, realModel } from '../helpers.js';

describe('model/trainer', () => {
  let base: FrozenBase;
  let train: Int32Array;
  let heldOut: Int32Array;
  let startId: number;
  before(async () => {
    const { base: loaded, tokenizer } = await realModel();
    base = new FrozenBase(loaded, 'int8');
    startId = tokenizer.startId;
    const oz = tokenizer.encode(corpus('wizard-of-oz.txt'), { bos: false });
    const cut = Math.floor(oz.length * 0.9);
    train = oz.subarray(0, cut);
    heldOut = oz.subarray(cut, cut + 4096);
  });
  after(() => base.dispose());

  it('a few dozen steps on Oz lower held-out Oz loss; only the adapter changes; no tensor leaks', async () => {
    const { tokenizer } = await realModel();
    const probe = tokenizer.encode('The Scarecrow and the Tin Woodman walked', { bos: true });
    const baseLogits = logitsFor(base, probe);
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 8, targets: ['wq', 'wv', 'w2'], seed: 1 });
    const before = evaluateLoss(base, heldOut, { startId, adapter: ad }).loss;
    const trainer = new LocalTrainer(base, ad, train, { startId, steps: 30, lr: 5e-3, batchSize: 8, seqLen: 64, seed: 1 });
    const counts: number[] = [];
    const events: TrainProgress[] = [];
    trainer.progress$.subscribe((p) => {
      events.push(p);
      counts.push(tf.memory().numTensors);
    });
    const r = await trainer.run();
    const after = evaluateLoss(base, heldOut, { startId, adapter: ad }).loss;
    assert.equal(r.steps, 30);
    assert.equal(events.length, 30);
    assert.ok(after < before - 0.2, `held-out loss ${before} -> ${after}`);
    assert.ok(new Set(counts.slice(2)).size === 1, `tensor count drifted: ${counts.join(',')}`);
    // the frozen base is untouched: without the adapter the logits are bit-identical
    logitsFor(base, probe).forEach((row, t) => assert.deepEqual(row, baseLogits[t]));
    ad.dispose();
  });

  it('FFA-LoRA (freezeA) trains B only and leaves A at its seeded value', async () => {
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq'], freezeA: true, seed: 5 });
    const a0 = ad.toTensors().filter((t) => t.name.endsWith('lora_A'));
    await new LocalTrainer(base, ad, train, { startId, steps: 3, seqLen: 32, batchSize: 2, seed: 2, lr: 1e-2 }).run();
    const after = ad.toTensors();
    a0.forEach((t) => assert.deepEqual(after.find((u) => u.name === t.name)!.data, t.data));
    assert.ok(after.filter((t) => t.name.endsWith('lora_B')).some((t) => t.data.some((v) => v !== 0)));
    ad.dispose();
  });

  it('LoRA dropout is seeded: equal seeds train equal adapters, and it differs from no dropout', async () => {
    const run = async (dropout: number, seed: number): Promise<Float32Array> => {
      const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wv'], dropout, seed: 9 });
      await new LocalTrainer(base, ad, train, { startId, steps: 3, seqLen: 32, batchSize: 2, seed, lr: 1e-2 }).run();
      const b = ad.toTensors().find((t) => t.name === 'layers.0.wq.lora_B')!.data;
      ad.dispose();
      return b;
    };
    const a = await run(0.3, 4);
    assert.deepEqual(await run(0.3, 4), a);
    assert.notDeepEqual(await run(0, 4), a);
  });

  it('stops at the time budget and converts epochs to steps', async () => {
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 2 });
    const r = await new LocalTrainer(base, ad, train, { startId, steps: 100000, seqLen: 32, batchSize: 2, timeBudgetMs: 300, seed: 1 }).run();
    assert.ok(r.stoppedByBudget && r.steps < 100000);
    const small = train.subarray(0, 640);
    const e = await new LocalTrainer(base, ad, small, { startId, epochs: 2, seqLen: 32, batchSize: 4, seed: 1 }).run();
    assert.equal(e.steps, 10);
    ad.dispose();
  });

  it('stops with a clear error when gradients turn non-finite, leaving the adapter as it was', async () => {
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 2, targets: ['wq'] });
    const p = ad.list()[0];
    p.bT.assign(tf.fill(p.bT.shape, NaN) as tf.Tensor2D);
    const before = ad.toFlat();
    const n = tf.memory().numTensors;
    await assert.rejects(new LocalTrainer(base, ad, train, { startId, steps: 2, seqLen: 16, batchSize: 1, seed: 1 }).run(), /gradient norm became NaN/);
    assert.deepEqual(Array.from(ad.toFlat()).map(String), Array.from(before).map(String));
    assert.equal(tf.memory().numTensors, n);
    ad.dispose();
  });

  it('FedProx: the proximal term μ keeps the adapter closer to where it started (and μ = 0 is plain training)', async () => {
    const dist = async (mu?: number): Promise<number> => {
      const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wv'], seed: 2 });
      const start = ad.toFlat();
      const n0 = tf.memory().numTensors;
      await new LocalTrainer(base, ad, train, { startId, steps: 12, lr: 1e-2, batchSize: 4, seqLen: 32, seed: 5, ...(mu === undefined ? {} : { proximalMu: mu }) }).run();
      assert.equal(tf.memory().numTensors, n0, 'no tensor leaks');
      const end = ad.toFlat();
      ad.dispose();
      return Math.hypot(...end.map((v, i) => v - start[i]));
    };
    const plain = await dist();
    assert.equal(await dist(0), plain);
    const prox = await dist(50);
    assert.ok(prox < 0.8 * plain, `moved ${prox} with μ = 50 vs ${plain} without`);
    assert.throws(() => new LocalTrainer(base, LoraAdapter.create(base.config, base.sha256, {}), train, { startId, proximalMu: -1 }), /proximalMu must be a finite number ≥ 0/);
  });

  it('validates options and refuses adapters of another base', () => {
    const ad = LoraAdapter.create(base.config, base.sha256, {});
    assert.throws(() => new LocalTrainer(base, ad, train, { startId, lr: 0 }), /LocalTrainer: lr must be a positive number/);
    assert.throws(() => new LocalTrainer(base, ad, train, { startId, seqLen: 4096 }), /exceeds the model's context/);
    assert.throws(() => new LocalTrainer(base, ad, train.subarray(0, 10), { startId, seqLen: 64 }), /fewer than one window/);
    const foreign = LoraAdapter.create(base.config, 'f'.repeat(64), {});
    assert.throws(() => new LocalTrainer(base, foreign, train, { startId }), /another base/);
    ad.dispose();
    foreign.dispose();
  });
});
