import assert from 'node:assert/strict';
import { epsilonFor, logErfc, prvCalibrateSigma, prvDelta, prvEpsilon } from '../../../privacy/index.js';

// Independent references. Nothing here discretises the privacy loss: the Gaussian mechanism's
// exact curve (Balle & Wang 2018), the subsampled Gaussian's exact one-step curve from the
// threshold where the loss crosses ε, two steps by 1-D quadrature over the first step.

/** P(N(0,1) > z) and P(N(0,1) ≤ z). */
const upper = (z: number): number => (z === Infinity ? 0 : z === -Infinity ? 1 : 0.5 * Math.exp(logErfc(z / Math.SQRT2)));
const lower = (z: number): number => upper(-z);

/** Smallest ε ≥ 0 with delta(ε) ≤ target, by bisection (delta decreasing). */
function solve(delta: (eps: number) => number, target: number): number {
  if (delta(0) <= target) return 0;
  let lo = 0;
  let hi = 1;
  while (delta(hi) > target) hi *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (delta(mid) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The Gaussian mechanism with μ = Δ/σ: δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2). */
const gaussianDelta = (mu: number) => (eps: number): number => lower(-eps / mu + mu / 2) - Math.exp(eps) * lower(-eps / mu - mu / 2);

/** One step of the Poisson-subsampled Gaussian, exactly, for any real ε, in each direction. */
function oneStep(q: number, s: number, eps: number): { remove: number; add: number } {
  // remove: P = (1−q)N(0,s²) + qN(1,s²), Q = N(0,s²); loss log(1 − q + q e^{(2x−1)/(2s²)}) > ε iff x > x₁
  const r = Math.exp(eps) - 1 + q;
  const x1 = r > 0 ? 0.5 + s * s * Math.log(r / q) : -Infinity;
  const remove = x1 === -Infinity ? -Math.expm1(eps) : (1 - q) * upper(x1 / s) + q * upper((x1 - 1) / s) - Math.exp(eps) * upper(x1 / s);
  // add: P = N(0,s²), Q the mixture; the loss −log(…) > ε iff x < x₂
  const r2 = Math.exp(-eps) - 1 + q;
  const x2 = r2 > 0 ? 0.5 + s * s * Math.log(r2 / q) : -Infinity;
  const add = x2 === -Infinity ? 0 : lower(x2 / s) - Math.exp(eps) * ((1 - q) * lower(x2 / s) + q * lower((x2 - 1) / s));
  return { remove: Math.max(0, remove), add: Math.max(0, add) };
}

/** Two steps: δ₂(ε) = ∫ p(x) δ₁(ε − ℓ(x)) dx in each direction, Simpson's rule on [−12s, 1 + 12s]. */
function twoStepDelta(q: number, s: number, eps: number): number {
  const n = 6000;
  const a = -12 * s;
  const dx = (1 + 24 * s) / n;
  const dens = (x: number, m: number): number => Math.exp(-((x - m) ** 2) / (2 * s * s)) / (s * Math.sqrt(2 * Math.PI));
  let remove = 0;
  let add = 0;
  for (let i = 0; i <= n; i++) {
    const x = a + i * dx;
    const w = (i === 0 || i === n ? 1 : i % 2 ? 4 : 2) * (dx / 3);
    const l = Math.log(1 - q + q * Math.exp((2 * x - 1) / (2 * s * s)));
    remove += w * ((1 - q) * dens(x, 0) + q * dens(x, 1)) * oneStep(q, s, eps - l).remove;
    add += w * dens(x, 0) * oneStep(q, s, eps + l).add;
  }
  return Math.max(remove, add);
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

describe('privacy/accountant PRV/PLD accountant', function () {
  this.timeout(120000);

  it('matches the Gaussian mechanism exactly when q = 1 (T steps of σ are one of σ/√T)', () => {
    for (const [sigma, steps, delta] of [
      [1, 1, 1e-5],
      [0.8, 3, 1e-5],
      [2, 10, 1e-3],
      [5, 100, 1e-5],
      [20, 1000, 1e-6],
      [3, 5000, 1e-5],
      [5, 100, 1e-10],
    ]) {
      const exact = solve(gaussianDelta(Math.sqrt(steps) / sigma), delta);
      const got = prvEpsilon({ q: 1, sigma, steps, delta });
      assert.ok(got >= exact - 1e-9, `σ ${sigma}, T ${steps}: ${got} is below the exact ${exact}`);
      assert.ok(rel(got, exact) < 1e-3, `σ ${sigma}, T ${steps}: ${got} vs exact ${exact}`);
      const d = prvDelta({ q: 1, sigma, steps, epsilon: exact });
      assert.ok(d >= delta * (1 - 1e-9) && d < delta * 1.01, `δ at the exact ε: ${d} vs ${delta}`);
    }
  });

  it('agrees with direct numerical integration for one and two subsampled steps', () => {
    for (const [q, sigma, delta] of [
      [0.1, 1, 1e-5],
      [0.1, 0.7, 1e-3],
      [0.01, 0.6, 1e-6],
    ]) {
      const one = solve((e) => Math.max(oneStep(q, sigma, e).remove, oneStep(q, sigma, e).add), delta);
      const gotOne = prvEpsilon({ q, sigma, steps: 1, delta });
      const two = solve((e) => twoStepDelta(q, sigma, e), delta);
      const gotTwo = prvEpsilon({ q, sigma, steps: 2, delta });
      assert.ok(gotOne >= one - 1e-9 && rel(gotOne, one) < 1e-3, `T = 1, q ${q}, σ ${sigma}: ${gotOne} vs ${one}`);
      assert.ok(gotTwo >= two * (1 - 1e-6) && rel(gotTwo, two) < 1e-3, `T = 2, q ${q}, σ ${sigma}: ${gotTwo} vs ${two}`);
    }
  });

  it('is tighter than RDP on the DP-SGD MNIST setting, fast, and monotone', () => {
    const q = 256 / 60000;
    const t0 = performance.now();
    const eps = prvEpsilon({ q, sigma: 1.12, steps: 14063, delta: 1e-5 });
    const ms = performance.now() - t0;
    const rdp = epsilonFor(q, 1.12, 14063, 1e-5).epsilon;
    assert.ok(eps < rdp && rdp - eps > 0.1, `PRV ${eps} vs RDP ${rdp}`);
    assert.ok(eps > 2 && eps < 2.4, String(eps));
    assert.ok(ms < 3000, `${ms} ms`);
    const fewer = prvEpsilon({ q, sigma: 1.12, steps: 7000, delta: 1e-5 });
    const noisier = prvEpsilon({ q, sigma: 1.3, steps: 14063, delta: 1e-5 });
    const looser = prvEpsilon({ q, sigma: 1.12, steps: 14063, delta: 1e-4 });
    assert.ok(fewer < eps && noisier < eps && looser < eps);
    assert.ok(prvDelta({ q, sigma: 1.12, steps: 14063, epsilon: eps }) <= 1e-5 * 1.001);
  });
});

describe('privacy/accountant PRV calibration and inputs', function () {
  this.timeout(120000);

  it('calibrates σ so that the PRV ε round-trips', () => {
    const q = 256 / 60000;
    const eps = prvEpsilon({ q, sigma: 1.12, steps: 14063, delta: 1e-5 });
    const sigma = prvCalibrateSigma(q, 14063, eps, 1e-5);
    assert.ok(rel(sigma, 1.12) < 1e-3, String(sigma));
    assert.ok(prvEpsilon({ q, sigma, steps: 14063, delta: 1e-5, log2Size: 17 }) <= eps);
  });

  it('has the trivial cases and rejects bad arguments, naming them', () => {
    assert.equal(prvEpsilon({ q: 0, sigma: 1, steps: 10, delta: 1e-5 }), 0);
    assert.equal(prvEpsilon({ q: 0.1, sigma: 1, steps: 0, delta: 1e-5 }), 0);
    assert.equal(prvDelta({ q: 0, sigma: 1, steps: 10, epsilon: 1 }), 0);
    assert.equal(prvEpsilon({ q: 0.01, sigma: 50, steps: 1, delta: 0.5 }), 0); // (0, δ)-DP already
    assert.throws(() => prvEpsilon({ q: 1.5, sigma: 1, steps: 1, delta: 1e-5 }), /q must be in \[0, 1\]/);
    assert.throws(() => prvEpsilon({ q: 0.1, sigma: 0, steps: 1, delta: 1e-5 }), /sigma must be a positive number/);
    assert.throws(() => prvEpsilon({ q: 0.1, sigma: 1, steps: 1.5, delta: 1e-5 }), /steps must be a non-negative integer/);
    assert.throws(() => prvEpsilon({ q: 0.1, sigma: 1, steps: 1, delta: 0 }), /delta must be in \(0, 1\)/);
    assert.throws(() => prvEpsilon({ q: 0.1, sigma: 1, steps: 1, delta: 1e-5, log2Size: 30 }), /log2Size must be an integer in 12 … 24/);
    assert.throws(() => prvDelta({ q: 0.1, sigma: 1, steps: 1, epsilon: -1 }), /epsilon must be a finite number ≥ 0/);
  });

  it('never answers NaN: with very little noise it reports no bound (ε = Infinity) rather than a wrong one', () => {
    assert.equal(prvEpsilon({ q: 1, sigma: 0.3, steps: 4, delta: 1e-5 }), Infinity);
  });
});
