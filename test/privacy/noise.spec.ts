import assert from 'node:assert/strict';
import { seededRng } from '../../model/index.js';
import { AdaptiveClip, addGaussianNoise, l2Norm, noiseNormBound, noiseStd } from '../../privacy/index.js';

function stats(x: Float64Array): { mean: number; std: number } {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const v = x.reduce((a, b) => a + (b - mean) ** 2, 0) / (x.length - 1);
  return { mean, std: Math.sqrt(v) };
}

describe('privacy/noise', () => {
  it('adds noise whose measured std is the requested std (not its square)', () => {
    const n = 200_000;
    for (const std of [0.05, 1.3]) {
      const s = stats(addGaussianNoise(new Float64Array(n), std, seededRng(7)));
      // the sample std of n normals has relative standard error 1/√(2n) ≈ 0.0016
      assert.ok(Math.abs(s.std / std - 1) < 0.01, `std ${s.std} vs ${std}`);
      assert.ok(Math.abs(s.mean) < (5 * std) / Math.sqrt(n), `mean ${s.mean}`);
    }
  });

  it('distributed noise from n devices sums to the central noise', () => {
    const n = 16;
    const dim = 50_000;
    const total = new Float64Array(dim);
    for (let d = 0; d < n; d++) {
      const part = addGaussianNoise(new Float64Array(dim), noiseStd('distributed', 1.1, 0.5, n), seededRng(100 + d));
      part.forEach((v, i) => (total[i] += v));
    }
    assert.ok(Math.abs(stats(total).std / noiseStd('central', 1.1, 0.5) - 1) < 0.02);
  });

  it('noiseNormBound holds for noise vectors and is close to std·√n, not loose', () => {
    const rng = seededRng(11);
    for (const [n, std] of [[10, 2], [1000, 0.1], [50_000, 0.03]] as const) {
      const bound = noiseNormBound(std, n);
      let worst = 0;
      for (let k = 0; k < 100; k++) worst = Math.max(worst, Math.sqrt(addGaussianNoise(new Float64Array(n), std, rng).reduce((a, v) => a + v * v, 0)));
      assert.ok(worst < bound, `n ${n}: ‖noise‖ ${worst} ≥ bound ${bound}`);
    }
    assert.ok(noiseNormBound(0.1, 1_000_000) < 0.1 * 1000 * 1.01);
    assert.equal(noiseNormBound(0, 100), 0);
    assert.throws(() => noiseNormBound(-1, 3), /noiseNormBound: std must be a finite number ≥ 0/);
    assert.throws(() => noiseNormBound(1, 1.5), /noiseNormBound: n must be an integer ≥ 0/);
  });

  it('is reproducible with a seed and leaves its input untouched', () => {
    const x = Float64Array.of(1, 2, 3);
    assert.deepEqual(addGaussianNoise(x, 1, seededRng(3)), addGaussianNoise(x, 1, seededRng(3)));
    assert.deepEqual(Array.from(x), [1, 2, 3]);
    assert.throws(() => addGaussianNoise(x, -1, seededRng(1)), /std must be a finite number ≥ 0/);
    assert.throws(() => noiseStd('distributed', 1, 1, 0), /parties must be a positive integer/);
  });
});

describe('privacy/adaptive-clip', () => {
  it('moves C toward the target quantile of the norms', () => {
    const rng = seededRng(5);
    const norms = Array.from({ length: 200 }, (_, i) => 0.5 + i / 200); // median ≈ 1.0
    const clip = new AdaptiveClip({ initialClip: 0.1, targetQuantile: 0.5, learningRate: 0.2 });
    for (let round = 0; round < 300; round++) clip.update(norms.map((n) => n <= clip.clip), rng);
    assert.ok(Math.abs(clip.clip - 1.0) < 0.05, `clip ${clip.clip}`);
  });

  it('follows C ← C·exp(−η(b̄ − γ)) exactly without count noise', () => {
    const clip = new AdaptiveClip({ initialClip: 2, targetQuantile: 0.5, learningRate: 0.2 });
    const c = clip.update([true, true, true, false], seededRng(1));
    assert.ok(Math.abs(c - 2 * Math.exp(-0.2 * (0.75 - 0.5))) < 1e-12);
    assert.throws(() => new AdaptiveClip({ targetQuantile: 1 }), /targetQuantile must be in \(0, 1\)/);
    assert.ok(l2Norm(Float32Array.of(3, 4)) === 5);
  });
});
