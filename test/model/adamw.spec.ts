import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdamW, variableFrom } from '../../model/index.js';
import { realModel } from '../helpers.js';
import { ADAMW_KERNEL, installAdamWKernel, uninstallAdamWKernel } from '../../model/ops/adamw-kernel.js';

describe('model/adamw', () => {
  before(realModel);

  it('matches the AdamW update computed by hand over three steps, weight decay decoupled', () => {
    const p = variableFrom(tf.tensor1d([1, -2]), true, 'adamw-test-p');
    const opt = new AdamW([p], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.5 });
    const grads = [
      [0.5, -1],
      [0.2, 0.3],
      [-0.4, 0.1],
    ];
    let w = [1, -2];
    let m = [0, 0];
    let v = [0, 0];
    grads.forEach((g, t) => {
      tf.tidy(() => opt.step({ [p.name]: tf.tensor1d(g) }));
      m = m.map((x, i) => 0.9 * x + 0.1 * g[i]);
      v = v.map((x, i) => 0.99 * x + 0.01 * g[i] * g[i]);
      const mh = m.map((x) => x / (1 - 0.9 ** (t + 1)));
      const vh = v.map((x) => x / (1 - 0.99 ** (t + 1)));
      w = w.map((x, i) => x * (1 - 0.1 * 0.5) - 0.1 * (mh[i] / (Math.sqrt(vh[i]) + 1e-8)));
    });
    const got = p.dataSync();
    w.forEach((x, i) => assert.ok(Math.abs(got[i] - x) < 1e-5, `${got[i]} vs ${x}`));
    opt.dispose();
    p.dispose();
  });

  it('the one-kernel update (wasm) is bit-identical to the op-by-op update over three steps, one kernel per variable, no tensor left', async () => {
    if (tf.getBackend() !== 'wasm') return;
    const run = async (fused: boolean) => {
      if (fused) installAdamWKernel();
      else uninstallAdamWKernel();
      const ps = [[40, 3], [7]].map((shape, k) => variableFrom(tf.randomNormal(shape, 0, 1, 'float32', 30 + k), true, `adamw-fused-${fused}-${k}`));
      const opt = new AdamW(ps, { lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1 });
      const before = tf.memory().numTensors;
      let kernels = 0;
      for (let t = 0; t < 3; t++) {
        const prof = await tf.profile(() => tf.tidy(() => opt.step(Object.fromEntries(ps.map((p, k) => [p.name, tf.randomNormal(p.shape, 0, 1, 'float32', 40 + 3 * t + k)])))));
        kernels = prof.kernels.filter((k) => k.name === ADAMW_KERNEL).length;
      }
      assert.equal(tf.memory().numTensors, before, `fused=${fused}: tensor count`);
      const out = ps.map((p) => Array.from(p.dataSync()));
      opt.dispose();
      ps.forEach((p) => p.dispose());
      return { out, kernels };
    };
    try {
      const [fused, chain] = [await run(true), await run(false)];
      assert.equal(fused.kernels, 2);
      assert.equal(chain.kernels, 0);
      // bit-identical: the cohort trainer's op-by-op AdamW must agree with LocalTrainer's exactly
      fused.out.forEach((o, k) => o.forEach((x, i) => assert.ok(Object.is(x, chain.out[k][i]), `variable ${k}[${i}]: ${x} vs ${chain.out[k][i]}`)));
    } finally {
      installAdamWKernel();
    }
  });
});
