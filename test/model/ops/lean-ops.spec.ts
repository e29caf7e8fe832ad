import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../model/index.js';
import { leanRmsNorm, plus, rotaryMix, scaled, swiglu, view } from '../../../model/ops/lean-ops.js';
import { ropeTables } from '../../../model/rope.js';

/**
 * The fused ops must equal the op-by-op chains they replace: forward values bit for bit (same
 * kernels), gradients (tfjs's autodiff of the chain as the reference) to float32 rounding; and
 * they must save less: the tensors alive for backprop after the op are counted.
 */
function close(a: tf.Tensor, b: tf.Tensor, what: string): void {
  const x = a.dataSync();
  const y = b.dataSync();
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < x.length; i++) {
    scale = Math.max(scale, Math.abs(y[i]));
    diff = Math.max(diff, Math.abs(x[i] - y[i]));
  }
  assert.ok(scale > 0, `${what}: all zero, the check would be empty`);
  assert.ok(diff <= 2e-6 * scale, `${what}: differs by ${diff} (max ${scale})`);
}

/** Tensors alive after running f under a gradient tape, before backprop: what the ops saved. */
function savedBy(f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): number {
  let saved = 0;
  tf.tidy(() => {
    const before = tf.memory().numTensors;
    tf.grad((v: tf.Tensor) => {
      const y = tf.tidy(() => tf.sum(f(v)));
      saved = tf.memory().numTensors - before;
      return y;
    })(x);
  });
  return saved;
}

describe('model/ops/lean-ops', () => {
  before(async () => {
    await initBackend('wasm');
  });

  it('swiglu equals silu(a)·b and its gradients; keeps fewer tensors for backprop', () => {
    tf.tidy(() => {
      const a = tf.randomNormal([64, 48], 0, 2, 'float32', 3);
      const b = tf.randomNormal([64, 48], 0, 1, 'float32', 4);
      const w = tf.randomNormal([64, 48], 0, 1, 'float32', 5);
      const chain = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.mul(tf.mul(x, tf.sigmoid(x)), y);
      assert.deepEqual(Array.from(swiglu(a, b).dataSync()), Array.from(chain(a, b).dataSync()));
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(swiglu(x, y), w)))([a, b]);
      const [ra, rb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(chain(x, y), w)))([a, b]);
      close(ga, ra, 'd/da');
      close(gb, rb, 'd/db');
      assert.ok(savedBy((x) => swiglu(x, b), a) < savedBy((x) => chain(x, b), a));
    });
    assert.throws(() => swiglu(tf.zeros([2]), tf.zeros([3])), /swiglu: a is \[2\] but b is \[3\]/);
  });

  it('rotaryMix equals x·cos + (x R)·sin and its gradient, for both pairings; saves nothing', () => {
    const [B, T, H, hs] = [2, 5, 3, 8];
    for (const style of ['interleaved', 'neox'] as const) {
      const { cos, sin } = ropeTables(3, T, hs, { theta: 10000, style });
      // R for the pairs of this style: (x R)[a] = −x[b], (x R)[b] = x[a]
      const r = new Float32Array(hs * hs);
      for (let k = 0; k < hs / 2; k++) {
        const [p, q] = style === 'neox' ? [k, k + hs / 2] : [2 * k, 2 * k + 1];
        r[q * hs + p] = -1;
        r[p * hs + q] = 1;
      }
      tf.tidy(() => {
        const x = tf.randomNormal([B, T, H, hs], 0, 1, 'float32', 7);
        const w = tf.randomNormal([B, T, H, hs], 0, 1, 'float32', 8);
        const chain = (v: tf.Tensor): tf.Tensor =>
          tf.add(tf.mul(v, tf.tensor4d(cos, [1, T, 1, hs])), tf.mul(tf.reshape(tf.matMul(tf.reshape(v, [B * T * H, hs]) as tf.Tensor2D, tf.tensor2d(r, [hs, hs])), v.shape), tf.tensor4d(sin, [1, T, 1, hs])));
        const mix = (v: tf.Tensor): tf.Tensor => rotaryMix(v, cos, sin, [1, T, 1, hs], r);
        assert.deepEqual(Array.from(mix(x).dataSync()), Array.from(chain(x).dataSync()));
        close(tf.grad((v: tf.Tensor) => tf.sum(tf.mul(mix(v), w)))(x), tf.grad((v: tf.Tensor) => tf.sum(tf.mul(chain(v), w)))(x), `${style} d/dx`);
        assert.ok(savedBy(mix, x) < savedBy(chain, x));
      });
    }
  });

  it('plus (broadcasting), view, scaled and leanRmsNorm equal add, reshape, mul and the RMSNorm chain, with their gradients, saving less', () => {
    tf.tidy(() => {
      const x = tf.randomNormal([6, 4, 8], 0, 1, 'float32', 11);
      const bias = tf.randomNormal([8], 0, 1, 'float32', 12);
      const col = tf.randomNormal([4, 1], 0, 1, 'float32', 13);
      const w = tf.randomNormal([6, 4, 8], 0, 1, 'float32', 14);
      const normW = tf.randomNormal([8], 1, 0.2, 'float32', 15) as tf.Tensor1D;
      const pairs: [string, (v: tf.Tensor) => tf.Tensor, (v: tf.Tensor) => tf.Tensor][] = [
        ['plus', (v) => plus(plus(v, bias), col), (v) => tf.add(tf.add(v, bias), col)],
        ['view', (v) => tf.square(view(v, [24, 8])), (v) => tf.square(tf.reshape(v, [24, 8]))],
        ['scaled', (v) => tf.square(scaled(v, 0.3)), (v) => tf.square(tf.mul(v, 0.3))],
        ['leanRmsNorm', (v) => leanRmsNorm(v, normW, 1e-5), (v) => tf.mul(tf.mul(v, tf.rsqrt(tf.add(tf.mean(tf.square(v), -1, true), 1e-5))), normW)],
      ];
      for (const [name, lean, chain] of pairs) {
        assert.deepEqual(Array.from(lean(x).dataSync()).map((v, i) => [i, v]), Array.from(chain(x).dataSync()).map((v, i) => [i, v]), name);
        close(tf.grad((v: tf.Tensor) => tf.sum(tf.mul(view(lean(v), w.shape), w)))(x), tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.reshape(chain(v), w.shape), w)))(x), `${name} d/dx`);
        assert.ok(savedBy(lean, x) < savedBy(chain, x), `${name} saves as much as the chain`);
      }
      // the norm weight's gradient too (frozen in fedtune, but the op must still be right)
      const dwLean = tf.grad((u: tf.Tensor) => tf.sum(tf.mul(leanRmsNorm(x, u as tf.Tensor1D, 1e-5), w)))(normW);
      const dwChain = tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), u), w)))(normW);
      close(dwLean, dwChain, 'leanRmsNorm d/dw');
    });
  });
});
