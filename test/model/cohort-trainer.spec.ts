import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { CohortTrainer, FrozenBase, LocalTrainer, LoraAdapter, seededRng, type LoraConfig, type MaskedTokens, type TrainOptions, type TrainResult } from '../../model/index.js';
import { corpus, maxAbsDiff, realModel } from '../helpers.js';

/**
 * The reference is LocalTrainer itself, run one device at a time on copies of the same starting
 * adapters: the cohort must reproduce each device's own training. Tolerance: 1e-6 absolute on
 * adapter values of order 0.1 (a few float32 ulps); on the wasm backend the two are in fact
 * bit-identical, since every product a device's rows go through has the same shapes either way.
 */
const TOL = 1e-6;

describe('model/cohort-trainer', () => {
  let base: FrozenBase;
  let startId: number;
  let texts: Int32Array[];
  before(async () => {
    const { base: loaded, tokenizer } = await realModel();
    base = new FrozenBase(loaded, 'int8');
    startId = tokenizer.startId;
    texts = (['wizard-of-oz.txt', 'tinystories-sample.txt', 'tinyshakespeare.txt'] as const).map((n) => tokenizer.encode(corpus(n).slice(20_000, 40_000), { bos: false }));
  });
  after(() => base.dispose());

  /** A starting adapter as a device would receive it mid-training: the seeded A and a non-zero B, different per device. */
  const start = (lora: Partial<LoraConfig>, seed: number): LoraAdapter => {
    const ad = LoraAdapter.create(base.config, base.sha256, { ...lora, seed: 3 });
    const rng = seededRng(seed);
    ad.setFromFlat(ad.toFlat().map((v) => v + (rng.nextFloat() - 0.5) * 0.02));
    return ad;
  };

  async function compare(lora: Partial<LoraConfig>, data: (Int32Array | MaskedTokens)[], options: TrainOptions[]): Promise<{ cohort: Float32Array[]; solo: Float32Array[]; starts: Float32Array[] }> {
    const solo: Float32Array[] = [];
    const soloResults: TrainResult[] = [];
    for (let k = 0; k < data.length; k++) {
      const ad = start(lora, 100 + k);
      soloResults.push(await new LocalTrainer(base, ad, data[k], options[k]).run());
      solo.push(ad.toFlat());
      ad.dispose();
    }
    const ads = data.map((_, k) => start(lora, 100 + k));
    const starts = ads.map((a) => a.toFlat());
    const trainer = new CohortTrainer(base, ads.map((adapter, k) => ({ adapter, data: data[k], options: options[k] })));
    const seen = data.map(() => 0);
    trainer.progress.forEach((p, k) => p.subscribe(() => seen[k]++));
    const outcomes = await trainer.run();
    outcomes.forEach((o, k) => {
      assert.ok(o.ok, `member ${k} failed`);
      assert.equal(o.result.steps, soloResults[k].steps);
      assert.equal(seen[k], soloResults[k].steps, 'one progress event per step');
      assert.ok(Math.abs(o.result.firstLoss - soloResults[k].firstLoss) <= 1e-5 && Math.abs(o.result.lastLoss - soloResults[k].lastLoss) <= 1e-5, `losses of member ${k}`);
    });
    const cohort = ads.map((a) => a.toFlat());
    ads.forEach((a) => a.dispose());
    return { cohort, solo, starts };
  }

  it('K = 3 devices with their own data, seeds, adapters, steps and clip norms end where three LocalTrainer runs do', async () => {
    const lora = { rank: 4, alpha: 8, targets: ['wq', 'wv', 'wo', 'w2'] as const, dropout: 0.1 };
    const shared = { startId, batchSize: 4, seqLen: 64, lr: 5e-3, weightDecay: 0.01, proximalMu: 0.05 };
    const options: TrainOptions[] = [
      { ...shared, steps: 3, seed: 11, clipNorm: 1 },
      { ...shared, steps: 2, seed: 12, clipNorm: 0.05 }, // clipped every step
      { ...shared, steps: 4, seed: 13, clipNorm: 0 },
    ];
    const { cohort, solo, starts } = await compare({ ...lora, targets: [...lora.targets] }, texts, options);
    for (let k = 0; k < 3; k++) {
      assert.ok(maxAbsDiff(cohort[k], solo[k]) <= TOL, `member ${k}: ${maxAbsDiff(cohort[k], solo[k])}`);
      // not trivially equal: training moved every adapter, each its own way
      assert.ok(maxAbsDiff(cohort[k], starts[k]) > 1e-3);
      for (let j = 0; j < k; j++) assert.ok(maxAbsDiff(cohort[k], cohort[j]) > 1e-3);
    }
  });

  it('K = 1 equals LocalTrainer, with a loss mask and FFA-LoRA; tensors do not accumulate', async () => {
    const tokens = texts[0];
    const lossMask = Uint8Array.from(tokens, (_, i) => (i % 97 < 30 ? 1 : 0));
    const opts: TrainOptions = { startId, steps: 3, batchSize: 2, seqLen: 64, lr: 1e-2, seed: 7 };
    const n0 = tf.memory().numTensors;
    const { cohort, solo, starts } = await compare({ rank: 4, targets: ['wq', 'w3'], freezeA: true }, [{ tokens, lossMask }], [opts]);
    assert.ok(maxAbsDiff(cohort[0], solo[0]) <= TOL);
    assert.ok(maxAbsDiff(cohort[0], starts[0]) > 1e-3);
    assert.equal(tf.memory().numTensors, n0);
    // and during a run the count stays put step after step
    const ads = [start({ rank: 2 }, 1), start({ rank: 2 }, 2)];
    const trainer = new CohortTrainer(base, ads.map((adapter, k) => ({ adapter, data: texts[k], options: { startId, steps: 5, batchSize: 2, seqLen: 32, seed: k } })));
    const counts: number[] = [];
    trainer.progress[0].subscribe(() => counts.push(tf.memory().numTensors));
    await trainer.run();
    assert.equal(new Set(counts).size, 1, `tensor count drifted: ${counts.join(',')}`);
    ads.forEach((a) => a.dispose());
    assert.equal(tf.memory().numTensors, n0);
  });

  it('a member whose gradient turns non-finite fails alone, unchanged; the others train as if alone', async () => {
    const opts = (seed: number): TrainOptions => ({ startId, steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2, seed });
    const lora = { rank: 2, targets: ['wq', 'wv'] as ('wq' | 'wv')[] };
    const alone = start(lora, 5);
    await new LocalTrainer(base, alone, texts[2], opts(2)).run();
    const ads = [start(lora, 4), start(lora, 5)];
    const p = ads[0].list()[0];
    p.bT.assign(tf.fill(p.bT.shape, NaN) as tf.Tensor2D);
    const poisoned = ads[0].toFlat();
    const n0 = tf.memory().numTensors;
    const out = await new CohortTrainer(base, [
      { adapter: ads[0], data: texts[1], options: opts(1) },
      { adapter: ads[1], data: texts[2], options: opts(2) },
    ]).run();
    assert.equal(tf.memory().numTensors, n0);
    assert.ok(!out[0].ok && /gradient norm became NaN/.test(out[0].error.message));
    assert.deepEqual(Array.from(ads[0].toFlat()).map(String), Array.from(poisoned).map(String));
    assert.ok(out[1].ok && out[1].result.steps === 2);
    assert.ok(maxAbsDiff(ads[1].toFlat(), alone.toFlat()) <= TOL);
    [...ads, alone].forEach((a) => a.dispose());
  });

  it('refuses members that cannot share a program, and misuse', () => {
    const a = LoraAdapter.create(base.config, base.sha256, { rank: 2 });
    const b = LoraAdapter.create(base.config, base.sha256, { rank: 2 });
    const c = LoraAdapter.create(base.config, base.sha256, { rank: 4 });
    const o: TrainOptions = { startId, steps: 1, batchSize: 2, seqLen: 32 };
    assert.throws(() => new CohortTrainer(base, []), /CohortTrainer: members must be a non-empty array/);
    assert.throws(() => new CohortTrainer(base, [{ adapter: a, data: texts[0], options: o }, { adapter: b, data: texts[1], options: { ...o, lr: 1 } }]), /member 1 differs from member 0/);
    assert.throws(() => new CohortTrainer(base, [{ adapter: a, data: texts[0], options: o }, { adapter: c, data: texts[1], options: o }]), /member 1 differs from member 0/);
    assert.throws(() => new CohortTrainer(base, [{ adapter: a, data: texts[0], options: o }, { adapter: a, data: texts[1], options: o }]), /an adapter appears twice/);
    assert.throws(() => new CohortTrainer(base, [{ adapter: a, data: texts[0], options: { ...o, checkpoint: true } }]), /gradient checkpointing is not supported/);
    assert.throws(() => new CohortTrainer(base, [{ adapter: a, data: texts[0], options: { ...o, seqLen: 0 } }]), /CohortTrainer \(member 0\): seqLen must be a positive integer/);
    [a, b, c].forEach((x) => x.dispose());
  });
});
