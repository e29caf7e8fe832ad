import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, HEAD_LOGITS_CHUNK, initBackend, randomBase, seededRng, nextGaussian, type LlamaConfig } from '../../model/index.js';

/**
 * FrozenBase.logits on a vocabulary larger than one chunk: every logit equals the float64 dot
 * product of the hidden state with the head row (as held, dequantized), and the gradient in
 * `hidden` equals dy · W computed by hand.
 */
describe('model/frozen-base logits in vocabulary chunks', () => {
  before(async () => {
    await initBackend('wasm');
  });

  it('equals hidden · Wᵀ (float64 reference) across chunk boundaries, with the gradient dy · W', () => {
    const V = 2 * HEAD_LOGITS_CHUNK + 37;
    const config: LlamaConfig = { dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: V, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
    const base = new FrozenBase(randomBase(config, 2, { std: 0.5 }), 'int8');
    const r = seededRng(4);
    const n = 3;
    const h = Float32Array.from({ length: n * 16 }, () => nextGaussian(r));
    const dy = Float32Array.from({ length: n * V }, () => nextGaussian(r));
    const W = tf.tidy(() => base.weight('classifier').dataSync() as Float32Array); // [V, 16] as held
    tf.tidy(() => {
      const hidden = tf.tensor2d(h, [n, 16]);
      const y = base.logits(hidden).dataSync();
      assert.equal(y.length, n * V);
      for (let i = 0; i < n; i++) {
        for (const v of [0, 1, HEAD_LOGITS_CHUNK - 1, HEAD_LOGITS_CHUNK, 2 * HEAD_LOGITS_CHUNK + 5, V - 1]) {
          let ref = 0;
          for (let d = 0; d < 16; d++) ref += h[i * 16 + d] * W[v * 16 + d];
          assert.ok(Math.abs(y[i * V + v] - ref) < 1e-4, `logit [${i}, ${v}]: ${y[i * V + v]} vs ${ref}`);
        }
      }
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(base.logits(x as tf.Tensor2D), tf.tensor2d(dy, [n, V]))))(hidden).dataSync();
      for (let i = 0; i < n; i++) {
        for (let d = 0; d < 16; d++) {
          let ref = 0;
          for (let v = 0; v < V; v++) ref += dy[i * V + v] * W[v * 16 + d];
          assert.ok(Math.abs(g[i * 16 + d] - ref) < 1e-3 * Math.max(1, Math.abs(ref)), `grad [${i}, ${d}]: ${g[i * 16 + d]} vs ${ref}`);
        }
      }
    });
    base.dispose();
  });
});
