import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, headLoss, initBackend, randomBase, type QuantMode } from '../../model/index.js';

describe('model/head-loss', () => {
  before(async () => {
    await initBackend();
  });

  const config = { dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 1000, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };

  /** Loss and its gradient in the hidden states, in float64 from the dequantized head, by the textbook formula. */
  function reference(W: Float32Array, h: Float32Array, N: number, dim: number, V: number, targets: Int32Array, w?: Float32Array): { loss: number; grad: Float64Array } {
    let total = 0;
    for (let i = 0; i < N; i++) total += w ? w[i] : 1;
    let loss = 0;
    const grad = new Float64Array(N * dim);
    for (let i = 0; i < N; i++) {
      const z = new Float64Array(V);
      for (let v = 0; v < V; v++) for (let d = 0; d < dim; d++) z[v] += h[i * dim + d] * W[v * dim + d];
      const m = Math.max(...z);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(z[v] - m);
      const lse = m + Math.log(s);
      const c = (w ? w[i] : 1) / total;
      loss += c * (lse - z[targets[i]]);
      for (let v = 0; v < V; v++) {
        const g = c * (Math.exp(z[v] - lse) - (v === targets[i] ? 1 : 0));
        for (let d = 0; d < dim; d++) grad[i * dim + d] += g * W[v * dim + d];
      }
    }
    return { loss, grad };
  }

  for (const quant of ['none', 'int8', 'int4'] as QuantMode[]) {
    it(`chunked loss and gradient equal the full-logit formula (${quant} head, weighted and not)`, () => {
      const base = new FrozenBase(randomBase(config, 3, { std: 0.5 }), quant, { headQuant: quant === 'int4' ? 'int4' : undefined });
      try {
        const N = 12;
        const hData = Float32Array.from({ length: N * config.dim }, (_, i) => Math.sin(i * 0.37) * 2);
        const targets = Int32Array.from({ length: N }, (_, i) => (i * 397) % config.vocabSize);
        const W = tf.tidy(() => base.weight('classifier').dataSync() as Float32Array);
        for (const weights of [undefined, Float32Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 0 : 1))]) {
          const ref = reference(W, hData, N, config.dim, config.vocabSize, targets, weights);
          const before = tf.memory().numTensors;
          for (const opts of [{ chunked: true, chunk: 128 }, { chunked: true, chunk: 333 }, { chunked: false }]) {
            const h = tf.tensor2d(hData, [N, config.dim]);
            const { value, grads } = tf.valueAndGrads((x: tf.Tensor) => headLoss(base, x as tf.Tensor2D, targets, weights, opts))([h]);
            assert.ok(Math.abs(value.dataSync()[0] - ref.loss) < 1e-4 * Math.max(1, ref.loss), `loss ${value.dataSync()[0]} vs ${ref.loss} (${JSON.stringify(opts)})`);
            const g = grads[0].dataSync();
            for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i] - ref.grad[i]) < 1e-4, `grad[${i}] ${g[i]} vs ${ref.grad[i]} (${JSON.stringify(opts)})`);
            tf.dispose([h, value, ...grads]);
          }
          assert.equal(tf.memory().numTensors, before, 'no tensor outlives the loss');
        }
      } finally {
        base.dispose();
      }
    });
  }

  it('refuses targets outside the vocabulary and a bad chunk', () => {
    const base = new FrozenBase(randomBase(config, 1), 'none');
    try {
      tf.tidy(() => {
        const h = tf.zeros([2, config.dim]) as tf.Tensor2D;
        assert.throws(() => headLoss(base, h, Int32Array.of(1, 1000), undefined, { chunked: true }), /headLoss: target 1000 at 1 is outside the vocabulary/);
        assert.throws(() => headLoss(base, h, Int32Array.of(1, 2), undefined, { chunk: 0 }), /headLoss: opts.chunk must be a positive integer/);
      });
    } finally {
      base.dispose();
    }
  });

  it('a head of more rows than one chunk is never dequantized whole, even for a few rows of hidden states (default path)', () => {
    const base = new FrozenBase(randomBase(config, 2), 'int8');
    const whole: unknown[] = [];
    const spied = base as unknown as { weight: (ref: unknown) => tf.Tensor2D; weightT: (ref: unknown) => tf.Tensor2D };
    const [w, wT] = [spied.weight.bind(base), spied.weightT.bind(base)];
    spied.weight = (ref) => (whole.push(ref), w(ref));
    spied.weightT = (ref) => (whole.push(ref), wT(ref));
    try {
      tf.tidy(() => {
        const h = tf.randomNormal([2, config.dim], 0, 1, 'float32', 3) as tf.Tensor2D;
        const t = Int32Array.of(5, 900);
        // 2 × 1000 logits are few, but 1000 rows > chunk 256: chunked, same value as the plain path
        const g = tf.grad((x: tf.Tensor) => headLoss(base, x as tf.Tensor2D, t, undefined, { chunk: 256 }))(h);
        assert.deepEqual(whole, [], 'the whole head was dequantized');
        const plain = headLoss(base, h, t, undefined, { chunked: false }).dataSync()[0];
        assert.ok(Math.abs(headLoss(base, h, t, undefined, { chunk: 256 }).dataSync()[0] - plain) < 1e-5);
        assert.ok(g.dataSync().every(Number.isFinite));
        assert.deepEqual(whole, ['classifier'], 'the forced plain path takes the whole head');
      });
    } finally {
      base.dispose();
    }
  });
});
