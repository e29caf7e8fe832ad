import assert from 'node:assert/strict';
import { nextGaussian, seededRng } from '../../model/index.js';
import { densify, dequantizeUpdate, ErrorFeedback, quantizedUpdateBytes, stochasticQuantize, topK } from '../../privacy/index.js';

describe('privacy/compress', () => {
  const rng0 = seededRng(1);
  const x = Float32Array.from({ length: 1000 }, () => nextGaussian(rng0) * 0.01);

  for (const bits of [8, 4] as const) {
    it(`int${bits} stochastic quantization is unbiased and within one step per value`, () => {
      const rng = seededRng(2);
      const draws = 2000;
      const sum = new Float64Array(x.length);
      for (let t = 0; t < draws; t++) {
        const q = stochasticQuantize(x, bits, rng, 100);
        const y = dequantizeUpdate(q);
        y.forEach((v, i) => {
          const s = q.scales[Math.floor(i / 100)];
          assert.ok(Math.abs(v - x[i]) <= s * (1 + 1e-6), `value ${i}`);
          sum[i] += v;
        });
      }
      // mean error over draws → 0: each coordinate's mean has std ≤ s/(2√draws)
      const q = stochasticQuantize(x, bits, rng, 100);
      let worst = 0;
      sum.forEach((v, i) => (worst = Math.max(worst, Math.abs(v / draws - x[i]) / q.scales[Math.floor(i / 100)])));
      assert.ok(worst < 5 / (2 * Math.sqrt(draws)), `worst normalised bias ${worst}`);
      assert.equal(quantizedUpdateBytes(q), (bits === 8 ? 1000 : 500) + 40);
    });
  }

  it('top-k keeps the largest magnitudes', () => {
    const s = topK(Float32Array.of(0.1, -5, 3, 0, -3), 2);
    assert.deepEqual(Array.from(s.indices), [1, 2]);
    assert.deepEqual(Array.from(densify(s)), [0, -5, 3, 0, 0]);
    assert.throws(() => topK(Float32Array.of(1), 2), /k must be an integer in \[1, 1\]/);
  });

  it('top-k with error feedback converges on a toy problem where top-k alone stalls', () => {
    // distributed least squares: 4 devices each hold a target; the server applies the mean of the
    // devices' top-1 compressed gradients of ½‖w − tᵢ‖²
    const d = 10;
    const rng = seededRng(3);
    const targets = Array.from({ length: 4 }, () => Float32Array.from({ length: d }, () => nextGaussian(rng)));
    const optimum = Float32Array.from({ length: d }, (_, j) => targets.reduce((s, t) => s + t[j], 0) / 4);
    const run = (feedback: boolean): number => {
      const w = new Float32Array(d);
      const avg = new Float64Array(d);
      const ef = targets.map(() => new ErrorFeedback(d));
      const steps = 6000;
      for (let step = 0; step < steps; step++) {
        const agg = new Float32Array(d);
        targets.forEach((t, k) => {
          const g = Float32Array.from(w, (v, j) => v - t[j]);
          const sent = densify(feedback ? ef[k].compress(g, 1) : topK(g, 1));
          sent.forEach((v, j) => (agg[j] += v / 4));
        });
        agg.forEach((v, j) => (w[j] -= 0.05 * v));
        // the iterate oscillates around the optimum as residuals are paid out: average the tail
        if (step >= steps / 2) w.forEach((v, j) => (avg[j] += v / (steps / 2)));
      }
      return Math.sqrt(avg.reduce((s, v, j) => s + (v - optimum[j]) ** 2, 0));
    };
    const withEf = run(true);
    assert.ok(withEf < 5e-3, `error-feedback distance ${withEf}`);
    assert.ok(run(false) > 10 * withEf, 'plain top-k is biased here');
  });
});

describe('privacy/compress (input checks)', () => {
  it('refuses NaN in top-k and non-arrays in quantization', () => {
    assert.throws(() => topK(Float32Array.of(1, NaN, 3), 2), /topK: non-finite value at 1/);
    assert.throws(() => stochasticQuantize([1, 2] as unknown as Float32Array, 8, seededRng(1)), /must be a Float32Array/);
  });
});
