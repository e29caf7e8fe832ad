import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as tf from '@tensorflow/tfjs';
import {
  batchAt, crossEntropy, evaluateLoss, forward, FrozenBase, LocalTrainer, LoraAdapter, nextGaussian, randomBatch,
  scoredWindowStarts, seededRng, type WindowBatch,
} from '../../model/index.js';
import { corpus, realModel } from '../helpers.js';

/** Mean negative log-likelihood computed in plain JS (max-shifted log-softmax), weighted. */
function jsWeightedNll(logits: number[][], targets: Int32Array, weights: Float32Array): number {
  let num = 0;
  let den = 0;
  logits.forEach((row, i) => {
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
    num += weights[i]! * (lse - row[targets[i]!]!);
    den += weights[i]!;
  });
  return den === 0 ? 0 : num / den;
}

describe('masked loss (windows, crossEntropy, LocalTrainer, evaluateLoss)', function () {
  this.timeout(120_000);
  let base: FrozenBase;
  let tokens: Int32Array;
  before(async () => {
    const { base: loaded, tokenizer } = await realModel();
    base = new FrozenBase(loaded, 'int8');
    tokens = tokenizer.encode(corpus('wizard-of-oz.txt').slice(0, 20_000), { bos: false });
  });
  after(() => base.dispose());

  /** An adapter whose B is random, so its gradient w.r.t. A is not trivially zero. */
  function liveAdapter(seed: number): LoraAdapter {
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wv', 'w2'], seed });
    const rng = seededRng(seed);
    for (const p of ad.list()) p.bT.assign(tf.tensor2d(Float32Array.from({ length: p.bT.size }, () => 0.05 * nextGaussian(rng)), p.bT.shape));
    return ad;
  }
  function grads(ad: LoraAdapter, b: WindowBatch): { loss: number; g: Map<string, Float32Array> } {
    let out: { loss: number; g: Map<string, Float32Array> } | undefined;
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => crossEntropy(forward(base, b.inputs, b.batch, { adapter: ad }).logits, b.targets, b.weights), ad.trainableVariables());
      out = { loss: value.dataSync()[0]!, g: new Map(Object.entries(grads).map(([k, v]) => [k, v.dataSync() as Float32Array])) };
    });
    return out!;
  }

  it('batchAt aligns the weights with the targets (not the inputs); scoredWindowStarts matches brute force', () => {
    const mask = new Uint8Array(tokens.length);
    mask[100] = 1;
    const b = batchAt(tokens, [97, 100, 101], 8, 1, mask);
    assert.deepEqual([...b.weights!], [0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(b.targets[3], tokens[100]);
    assert.equal(b.inputs[4], tokens[100]);
    assert.equal(batchAt(tokens, [97], 8, 1).weights, undefined);
    assert.throws(() => batchAt(tokens, [0], 8, 1, new Uint8Array(3)), /batchAt: lossMask has 3 entries for \d+ tokens/);
    fc.assert(fc.property(fc.uint8Array({ min: 0, max: 1, maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (m, T) => {
      const brute: number[] = [];
      for (let s = 0; s + T <= m.length; s++) if (m.subarray(s, s + T).some((x) => x === 1)) brute.push(s);
      assert.deepEqual([...scoredWindowStarts(m, T)], brute);
    }), { numRuns: 300 });
  });

  it('randomBatch with a mask samples only windows holding a scored target, across all of them', () => {
    const mask = new Uint8Array(tokens.length);
    mask.fill(1, 1000, 1010);
    const rng = seededRng(3);
    const seen = new Set<number>();
    for (let k = 0; k < 50; k++) {
      const b = randomBatch(tokens, 4, 16, rng, 1, mask);
      for (let r = 0; r < 4; r++) {
        const w = [...b.weights!.subarray(r * 16, r * 16 + 16)];
        const j = w.indexOf(1);
        assert.ok(j >= 0, 'the window holds a scored target');
        seen.add(j > 0 ? 1000 - j : 1010 - w.filter((x) => x === 1).length); // the window's start

      }
    }
    // the valid starts are 985 … 1009 (25 windows), and 200 draws see them all
    const valid = Array.from({ length: 25 }, (_, i) => 985 + i);
    assert.deepEqual([...scoredWindowStarts(mask, 16)], valid);
    assert.deepEqual([...seen].sort((a, b) => a - b), valid);
    assert.throws(() => randomBatch(tokens, 2, 16, rng, 1, new Uint8Array(tokens.length)), /randomBatch: no window of 16 tokens holds a scored target/);
  });

  it('crossEntropy with weights equals the weighted mean of a plain-JS log-softmax; all-zero weights give 0 and a zero gradient', () => {
    const rng = seededRng(11);
    const N = 7, V = 13;
    const rows = Array.from({ length: N }, () => Array.from({ length: V }, () => 3 * nextGaussian(rng)));
    const targets = Int32Array.from({ length: N }, (_, i) => (i * 5) % V);
    for (const w of [[1, 0, 1, 1, 0, 0, 1], [0.5, 2, 0, 0, 1, 0.25, 3], [1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0, 0]]) {
      const weights = Float32Array.from(w);
      const got = tf.tidy(() => crossEntropy(tf.tensor2d(rows), targets, weights).dataSync()[0]!);
      assert.ok(Math.abs(got - jsWeightedNll(rows, targets, weights)) < 1e-5, `${got} vs ${jsWeightedNll(rows, targets, weights)}`);
    }
    const unweighted = tf.tidy(() => crossEntropy(tf.tensor2d(rows), targets).dataSync()[0]!);
    assert.ok(Math.abs(unweighted - jsWeightedNll(rows, targets, new Float32Array(N).fill(1))) < 1e-5);
    const zero = new Float32Array(N);
    const { loss, grad } = tf.tidy(() => {
      const x = tf.tensor2d(rows);
      return { loss: crossEntropy(x, targets, zero).dataSync()[0]!, grad: [...tf.grad((t: tf.Tensor) => crossEntropy(t as tf.Tensor2D, targets, zero))(x).dataSync()] };
    });
    assert.equal(loss, 0);
    assert.ok(grad.every((g) => g === 0), 'zero gradient, no NaN');
    assert.throws(() => tf.tidy(() => crossEntropy(tf.tensor2d(rows), targets, new Float32Array(3))), /crossEntropy: 3 weights for 7 logit rows/);
    assert.throws(() => tf.tidy(() => crossEntropy(tf.tensor2d(rows), targets, Float32Array.from([1, -1, 0, 0, 0, 0, 0]))), /crossEntropy: weight -1 at 1 is not a finite number ≥ 0/);
  });

  it('on the real model: the masked loss is the hand-computed weighted mean; a window with no scored target has a zero adapter gradient', () => {
    const ad = liveAdapter(4);
    const T = 24;
    const mask = new Uint8Array(tokens.length);
    mask.fill(1, 210, 220); // scored: tokens 210 … 219
    const b = batchAt(tokens, [200, 0], T, 1, mask); // window 1 (tokens 0 … 23) holds no scored target
    const logits = tf.tidy(() => forward(base, b.inputs, b.batch, { adapter: ad }).logits.arraySync());
    const { loss, g } = grads(ad, b);
    assert.ok(Math.abs(loss - jsWeightedNll(logits, b.targets, b.weights!)) < 1e-4, `${loss}`);
    // only window 0 is scored, so its gradient is that of window 0 alone
    const alone = grads(ad, batchAt(tokens, [200], T, 1, mask));
    for (const [k, v] of g) v.forEach((x, i) => assert.ok(Math.abs(x - alone.g.get(k)![i]!) < 1e-5, k));
    const none = grads(ad, batchAt(tokens, [0], T, 1, mask));
    assert.equal(none.loss, 0);
    for (const [k, v] of none.g) assert.ok(v.every((x) => x === 0), `${k} has a non-zero gradient`);
    assert.ok([...g.values()].some((v) => v.some((x) => x !== 0)), 'a scored window moves the adapter');
    ad.dispose();
  });

  it('on the real model: scoring only the first k targets equals the unmasked loss of the k-token window (causality)', () => {
    const ad = liveAdapter(6);
    const mask = new Uint8Array(tokens.length);
    mask.fill(1, 300, 310);
    const masked = grads(ad, batchAt(tokens, [300], 32, 1, mask));
    const short = grads(ad, batchAt(tokens, [300], 10, 1));
    assert.ok(Math.abs(masked.loss - short.loss) < 1e-4, `${masked.loss} vs ${short.loss}`);
    for (const [k, v] of masked.g) v.forEach((x, i) => assert.ok(Math.abs(x - short.g.get(k)![i]!) < 1e-4 * (1 + Math.abs(x)), k));
    ad.dispose();
  });

  it('LocalTrainer trains on masked tokens without leaking tensors, and refuses masks that score nothing or do not fit', async () => {
    const mask = new Uint8Array(tokens.length);
    for (let i = 0; i < tokens.length; i += 100) mask.fill(1, i, i + 20);
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wv'], seed: 1 });
    const trainer = new LocalTrainer(base, ad, { tokens, lossMask: mask }, { startId: 1, steps: 6, seqLen: 32, batchSize: 2, seed: 1, lr: 1e-2 });
    const counts: number[] = [];
    trainer.progress$.subscribe(() => counts.push(tf.memory().numTensors));
    const r = await trainer.run();
    assert.equal(r.steps, 6);
    assert.ok(Number.isFinite(r.lastLoss) && r.lastLoss > 0);
    assert.equal(new Set(counts.slice(1)).size, 1, `tensor count drifted: ${counts.join(',')}`);
    assert.throws(() => new LocalTrainer(base, ad, { tokens, lossMask: new Uint8Array(tokens.length) }, { startId: 1, seqLen: 32 }), /LocalTrainer: the loss mask scores no token/);
    assert.throws(() => new LocalTrainer(base, ad, { tokens, lossMask: new Uint8Array(5) }, { startId: 1, seqLen: 32 }), /LocalTrainer: lossMask has 5 entries/);
    assert.throws(() => new LocalTrainer(base, ad, { tokens: [1, 2] } as never, { startId: 1, seqLen: 32 }), /LocalTrainer: data must be an Int32Array/);
    ad.dispose();
  });

  it('evaluateLoss with a mask: all ones is the plain loss; ones on the first window only is that window\'s loss', () => {
    const stream = tokens.subarray(0, 200);
    const ones = new Uint8Array(200).fill(1);
    const plain = evaluateLoss(base, stream, { startId: 1, context: 64 });
    const all = evaluateLoss(base, { tokens: stream, lossMask: ones }, { startId: 1, context: 64 });
    assert.ok(Math.abs(plain.loss - all.loss) < 1e-5);
    assert.equal(all.tokens, 200);
    const first = new Uint8Array(200);
    first.fill(1, 0, 64);
    const r = evaluateLoss(base, { tokens: stream, lossMask: first }, { startId: 1, context: 64 });
    assert.equal(r.tokens, 64);
    assert.ok(Math.abs(r.loss - evaluateLoss(base, stream.subarray(0, 64), { startId: 1, context: 64 }).loss) < 1e-5);
    assert.throws(() => evaluateLoss(base, { tokens: stream, lossMask: new Uint8Array(200) }, { startId: 1, context: 64 }), /evaluateLoss: the loss mask scores no token/);
  });
});
