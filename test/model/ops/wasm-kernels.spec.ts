import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, nextGaussian, seededRng } from '../../../model/index.js';
import { realModel } from '../../helpers.js';

/** Reference slice of a row-major array, computed with plain index arithmetic. */
function refSlice(x: Float32Array, shape: number[], begin: number[], size: number[]): number[] {
  const out: number[] = [];
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const idx = new Array<number>(shape.length).fill(0);
  const total = size.reduce((a, b) => a * b, 1);
  for (let n = 0; n < total; n++) {
    out.push(x[idx.reduce((a, v, i) => a + (v + begin[i]) * strides[i], 0)]);
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i] < size[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

describe('model/ops/wasm-kernels', () => {
  before(realModel);

  it('runs on the wasm backend with the replacement kernels installed', () => {
    assert.equal(tf.getBackend(), 'wasm');
    assert.ok(tf.getKernel('UnsortedSegmentSum', 'wasm'));
  });

  it('slice, split and unstack return exactly the reference elements', () => {
    const r = seededRng(1);
    const shape = [3, 5, 7, 4];
    const data = Float32Array.from({ length: 420 }, () => nextGaussian(r));
    tf.tidy(() => {
      const x = tf.tensor(data, shape);
      for (const [begin, size] of [
        [[0, 0, 0, 0], [3, 5, 7, 4]],
        [[1, 2, 3, 1], [2, 3, 2, 3]],
        [[2, 0, 0, 0], [1, 5, 7, 4]],
        [[0, 4, 6, 0], [3, 1, 1, 4]],
      ]) {
        assert.deepEqual(Array.from(tf.slice(x, begin, size).dataSync()), refSlice(data, shape, begin, size));
      }
      const parts = tf.split(x, [2, 5], 2);
      assert.deepEqual(Array.from(parts[1].dataSync()), refSlice(data, shape, [0, 0, 2, 0], [3, 5, 5, 4]));
      const un = tf.unstack(x, 1);
      assert.equal(un.length, 5);
      assert.deepEqual(Array.from(un[3].dataSync()), refSlice(data, shape, [0, 3, 0, 0], [3, 1, 7, 4]));
    });
  });

  it('tf.clone shares the data buffer (no copy) and outlives its source; gradients through saved tensors stay right', () => {
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const buffers = tf.memory().numDataBuffers;
    const y = tf.clone(x);
    assert.equal(tf.memory().numDataBuffers, buffers, 'clone allocated a buffer');
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4, 5, 6]);
    assert.equal(tf.memory().numDataBuffers, buffers, 'the shared buffer stays while the clone lives');
    y.dispose();
    assert.equal(tf.memory().numDataBuffers, buffers - 1);
    // d/dv Σ sigmoid(v)·v: Sigmoid saves its output and Mul both inputs (clones); values by hand
    const v = tf.variable(tf.tensor1d([-1, 0, 2]));
    const g = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.sigmoid(t), t)))(v));
    const s = (z: number): number => 1 / (1 + Math.exp(-z));
    Array.from(g.dataSync()).forEach((gi, i) => {
      const z = [-1, 0, 2][i];
      assert.ok(Math.abs(gi - (s(z) + z * s(z) * (1 - s(z)))) < 1e-6);
    });
    g.dispose();
    v.dispose();
  });

  it('tf.gather has a gradient on wasm (scatter-add of dy into the gathered rows)', () => {
    tf.tidy(() => {
      const table = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]);
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d([2, 0, 2], 'int32')), tf.tensor2d([1, 10, 100, 1000, 7, 70], [3, 2]))))(table);
      assert.deepEqual(Array.from(g.dataSync()), [100, 1000, 0, 0, 8, 80]);
    });
  });

  it('crossEntropy equals mean(logsumexp − target logit) computed by hand, and its gradient is softmax − onehot', () => {
    const logits = [
      [1, 2, 3],
      [0.5, -1, 4],
    ];
    const targets = Int32Array.of(2, 0);
    const lse = (row: number[]): number => Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
    const expected = (lse(logits[0]) - 3 + lse(logits[1]) - 0.5) / 2;
    tf.tidy(() => {
      const x = tf.tensor2d(logits);
      assert.ok(Math.abs(crossEntropy(x, targets).dataSync()[0] - expected) < 1e-6);
      const g = tf.grad((t: tf.Tensor) => crossEntropy(t as tf.Tensor2D, targets))(x).arraySync() as number[][];
      logits.forEach((row, i) => {
        const z = Math.exp(lse(row));
        row.forEach((v, j) => assert.ok(Math.abs(g[i][j] - (Math.exp(v) / z - (j === targets[i] ? 1 : 0)) / 2) < 1e-6));
      });
    });
  });

  it('equal with broadcasting matches an element-by-element reference (ties included), in every broadcast pattern', () => {
    const rng = seededRng(3);
    // few distinct values, so about a third of the pairs tie
    const rand = (n: number, dtype: 'float32' | 'int32'): Float32Array | Int32Array => {
      const v = Array.from({ length: n }, () => Math.floor(rng.nextFloat() * 3) * (dtype === 'int32' ? 1 : 0.5));
      return dtype === 'int32' ? Int32Array.from(v) : Float32Array.from(v);
    };
    const cases: [number[], number[], 'float32' | 'int32'][] = [
      [[5, 7], [5, 1], 'float32'],
      [[5, 1], [5, 7], 'float32'],
      [[2, 3, 4], [4], 'float32'],
      [[2, 1, 4], [3, 1], 'int32'],
      [[6], [], 'float32'],
      [[1, 3, 1, 2], [4, 1, 5, 1], 'float32'],
    ];
    for (const [sa, sb, dtype] of cases) {
      const av = rand(sa.reduce((a, b) => a * b, 1), dtype);
      const bv = rand(sb.reduce((a, b) => a * b, 1), dtype);
      const out = [...new Array<number>(Math.max(sa.length, sb.length))].map((_, i, arr) => {
        const d = (s: number[]) => s[i - (arr.length - s.length)] ?? 1;
        return Math.max(d(sa), d(sb));
      });
      const at = (v: ArrayLike<number>, s: number[], idx: number[]): number => {
        const off = idx.slice(idx.length - s.length);
        let flat = 0;
        s.forEach((n, i) => (flat = flat * n + (n === 1 ? 0 : off[i])));
        return v[flat];
      };
      const expected: number[] = [];
      const idx = new Array<number>(out.length).fill(0);
      for (let n = 0; n < out.reduce((a, b) => a * b, 1); n++) {
        expected.push(at(av, sa, idx) === at(bv, sb, idx) ? 1 : 0);
        for (let i = out.length - 1; i >= 0; i--) {
          if (++idx[i] < out[i]) break;
          idx[i] = 0;
        }
      }
      const got = tf.tidy(() => tf.equal(tf.tensor(av, sa, dtype), tf.tensor(bv, sb, dtype)));
      assert.deepEqual(got.shape, out);
      assert.equal(got.dtype, 'bool');
      assert.deepEqual(Array.from(got.dataSync()), expected, `${JSON.stringify(sa)} vs ${JSON.stringify(sb)}`);
      got.dispose();
    }
  });
});
