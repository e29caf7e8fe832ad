import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdamW, variableFrom } from '../../model/index.js';
import { realModel } from '../helpers.js';

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
});
