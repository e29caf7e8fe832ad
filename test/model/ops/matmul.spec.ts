import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { batchMatMul, frozenMatMul, matMul, nextGaussian, seededRng } from '../../../model/index.js';
import { frozenMatMulNT, transposedProductsDirect } from '../../../model/ops/matmul.js';
import { nativeKernelsActive, setNativeKernels } from '../../../model/ops/native-kernels.js';
import { maxAbsDiff, realModel } from '../../helpers.js';

function rand(shape: number[], seed: number): tf.Tensor {
  const r = seededRng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => nextGaussian(r)), shape);
}

describe('model/ops (transpose-free matMul gradients)', () => {
  before(realModel);

  // shapes chosen to take every branch: thin and lopsided operands make the gradients
  // transpose the other side, and large enough batched products run per slice on wasm
  it('matMul and its gradients equal tfjs stock matMul, on square, thin and lopsided shapes', () => {
    for (const [m, k, n] of [[5, 7, 3], [64, 256, 4], [4, 256, 64], [300, 2, 300]]) {
      tf.tidy(() => {
        const a = rand([m, k], 1) as tf.Tensor2D;
        const b = rand([k, n], 2) as tf.Tensor2D;
        const w = rand([m, n], 3);
        const mine = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matMul(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
        const stock = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
        mine.forEach((g, i) => assert.ok(maxAbsDiff(g.dataSync(), stock[i].dataSync()) < 1e-3, `[${m},${k},${n}] grad ${i}`));
        assert.ok(maxAbsDiff(matMul(a, b).dataSync(), tf.matMul(a, b).dataSync()) < 1e-3);
      });
    }
  });

  it('batchMatMul and its gradients equal tfjs stock matMul, including the per-slice path', () => {
    for (const [B, m, k, n] of [[4, 6, 5, 3], [4, 64, 32, 16], [3, 128, 8, 128], [2, 16, 200, 2]]) {
      tf.tidy(() => {
        const a = rand([B, m, k], 4) as tf.Tensor3D;
        const b = rand([B, k, n], 5) as tf.Tensor3D;
        const w = rand([B, m, n], 6);
        const f = (mm: (x: tf.Tensor3D, y: tf.Tensor3D) => tf.Tensor) => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(mm(x as tf.Tensor3D, y as tf.Tensor3D), w)))([a, b]);
        const mine = f(batchMatMul);
        const stock = f((x, y) => tf.matMul(x, y));
        mine.forEach((g, i) => assert.ok(maxAbsDiff(g.dataSync(), stock[i].dataSync()) < 1e-3, `[${B},${m},${k},${n}] grad ${i}`));
        assert.ok(maxAbsDiff(batchMatMul(a, b).dataSync(), tf.matMul(a, b).dataSync()) < 1e-3);
      });
    }
  });

  it('frozenMatMul passes the gradient to x only, using the supplied weight', () => {
    tf.tidy(() => {
      const x = rand([3, 4], 7) as tf.Tensor2D;
      const wT = rand([4, 2], 8) as tf.Tensor2D;
      const g = tf.grad((v: tf.Tensor) => tf.sum(frozenMatMul(v as tf.Tensor2D, () => wT, () => tf.transpose(wT.clone()))))(x);
      const stock = tf.grad((v: tf.Tensor) => tf.sum(tf.matMul(v as tf.Tensor2D, wT)))(x);
      assert.ok(maxAbsDiff(g.dataSync(), stock.dataSync()) < 1e-6);
    });
  });

  it('frozenMatMulNT is x @ wᵀ with gradient dy @ w, with the native products (no Transpose kernel) and without', async () => {
    const active = nativeKernelsActive();
    try {
      for (const native of active ? [true, false] : [false]) {
        setNativeKernels(native);
        assert.equal(transposedProductsDirect(), native);
        const x = rand([37, 19], 9) as tf.Tensor2D;
        const w = rand([11, 19], 10) as tf.Tensor2D;
        const probe = rand([37, 11], 11);
        let got: Float32Array[] = [];
        const prof = await tf.profile(() => {
          got = tf.tidy(() => [frozenMatMulNT(x, () => w.clone()).dataSync() as Float32Array, tf.grad((v: tf.Tensor) => tf.sum(tf.mul(frozenMatMulNT(v as tf.Tensor2D, () => w.clone()), probe)))(x).dataSync() as Float32Array]);
        });
        const want = tf.tidy(() => [tf.matMul(x, tf.transpose(w)).dataSync(), tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.matMul(v as tf.Tensor2D, tf.transpose(w)), probe)))(x).dataSync()]);
        got.forEach((g, i) => assert.ok(maxAbsDiff(g, want[i]) < 1e-4, `native=${native} output ${i}`));
        assert.equal(prof.kernels.some((k) => k.name === 'Transpose'), !native, `native=${native}: Transpose kernels`);
        tf.dispose([x, w, probe]);
      }
    } finally {
      setNativeKernels(active);
    }
  });

  it('rejects shapes that do not chain, naming the op', () => {
    tf.tidy(() => {
      assert.throws(() => matMul(tf.zeros([2, 3]) as tf.Tensor2D, tf.zeros([4, 2]) as tf.Tensor2D), /matMul: inner dimensions differ/);
      assert.throws(() => batchMatMul(tf.zeros([2, 3, 4]) as tf.Tensor3D, tf.zeros([3, 4, 2]) as tf.Tensor3D), /batchMatMul: shapes/);
    });
  });
});
