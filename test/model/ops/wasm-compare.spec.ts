import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend, nextGaussian, seededRng } from '../../../model/index.js';
import { compareBroadcast } from '../../../model/ops/wasm-compare.js';

/** NumPy broadcasting, element by element: unravel the output index, clamp broadcast axes to 0. */
function reference(cmp: (x: number, y: number) => boolean, a: ArrayLike<number>, as: number[], b: ArrayLike<number>, bs: number[], out: number[]): number[] {
  const size = out.reduce((p, v) => p * v, 1);
  const at = (data: ArrayLike<number>, shape: number[], coord: number[]): number => {
    let off = 0;
    for (let i = 0; i < shape.length; i++) off = off * shape[i] + (shape[i] === 1 ? 0 : coord[coord.length - shape.length + i]);
    return data[off];
  };
  const res: number[] = [];
  for (let f = 0; f < size; f++) {
    const coord: number[] = [];
    let r = f;
    for (let d = out.length - 1; d >= 0; d--) {
      coord.unshift(r % out[d]);
      r = Math.floor(r / out[d]);
    }
    res.push(cmp(at(a, as, coord), at(b, bs, coord)) ? 1 : 0);
  }
  return res;
}

describe('model/ops/wasm-compare (broadcasting comparison kernels)', () => {
  before(() => initBackend('wasm'));

  const shapes: [number[], number[]][] = [
    [[7, 5], [7, 1]],
    [[7, 5], [7, 5]],
    [[3, 1, 4], [2, 1]],
    [[1], [2, 3]],
    [[], [4]],
    [[2, 3, 4, 5], [3, 1, 5]],
  ];

  it('compareBroadcast equals element-by-element broadcasting on mixed shapes', () => {
    const r = seededRng(1);
    for (const [as, bs] of shapes) {
      const out = tf.backend_util.assertAndGetBroadcastShape(as, bs);
      // few distinct values, so equality happens often
      const a = Float32Array.from({ length: as.reduce((p, v) => p * v, 1) }, () => Math.round(nextGaussian(r)));
      const b = Float32Array.from({ length: bs.reduce((p, v) => p * v, 1) }, () => Math.round(nextGaussian(r)));
      for (const cmp of [(x: number, y: number) => x === y, (x: number, y: number) => x < y]) {
        const got = new Uint8Array(out.reduce((p, v) => p * v, 1));
        compareBroadcast(cmp, a, as, b, bs, got, out);
        assert.deepEqual([...got], reference(cmp, a, as, b, bs, out), `[${as}] vs [${bs}]`);
      }
    }
  });

  it('the registered kernels give what tf.equal / tf.greater / … mean, including NaN and int32', () => {
    tf.tidy(() => {
      const a = tf.tensor2d([1, Number.NaN, 3, -2, 0, 5], [2, 3]);
      const b = tf.tensor2d([3, 0], [2, 1]);
      assert.deepEqual(tf.equal(a, b).arraySync(), [[0, 0, 1], [0, 1, 0]]);
      assert.deepEqual(tf.notEqual(a, b).arraySync(), [[1, 1, 0], [1, 0, 1]]);
      assert.deepEqual(tf.greater(a, b).arraySync(), [[0, 0, 0], [0, 0, 1]]);
      assert.deepEqual(tf.greaterEqual(a, b).arraySync(), [[0, 0, 1], [0, 1, 1]]);
      assert.deepEqual(tf.less(a, b).arraySync(), [[1, 0, 0], [1, 0, 0]]);
      assert.deepEqual(tf.lessEqual(a, b).arraySync(), [[1, 0, 1], [1, 1, 0]]);
      assert.deepEqual(tf.equal(tf.tensor1d([1, 2, 3], 'int32'), tf.scalar(2, 'int32')).arraySync(), [0, 1, 0]);
      assert.equal(tf.equal(a, b).dtype, 'bool');
    });
  });

  it('tf.max gradient (which runs Equal with broadcasting) picks the maxima', () => {
    tf.tidy(() => {
      const x = tf.tensor2d([1, 4, 2, 7, 3, 7], [2, 3]);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.max(v, 1)))(x);
      assert.deepEqual(g.arraySync(), [[0, 1, 0], [1, 0, 1]]);
    });
  });
});
