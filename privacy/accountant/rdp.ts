/**
 * Rényi DP of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar & Zhang 2019): a
 * record is included with probability q, and the released sum carries Gaussian noise of
 * standard deviation σ times the L2 sensitivity. RDP at order α is log A_α / (α − 1), with
 * A_α an exact finite sum for integer α and a pair of erfc-weighted series for fractional α.
 * Composition over T steps multiplies by T.
 */
import { logAdd, logErfc, logSub } from './special.js';

/** RDP orders used by default: 1.1 … 10.9 by 0.1, 12 … 63, 128, 256, 512. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
  128,
  256,
  512,
]);

function logAInt(q: number, sigma: number, alpha: number): number {
  // A_α = Σ_{i=0}^{α} C(α, i) (1−q)^{α−i} q^i exp((i² − i) / (2σ²))
  let logA = -Infinity;
  let logBinom = 0;
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log(alpha - i + 1) - Math.log(i);
    const term = logBinom + i * Math.log(q) + (alpha - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, term);
  }
  return logA;
}

function logAFrac(q: number, sigma: number, alpha: number): number {
  // Mironov et al. 2019, §3.3: A_α = A₀ + A₁, each an alternating-sign series in generalized binomials
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  let logCoef = 0; // log |C(α, i)|
  let sign = 1;
  for (let i = 0; i < 100000; i++) {
    if (i > 0) {
      const f = (alpha - i + 1) / i;
      if (f === 0) break;
      logCoef += Math.log(Math.abs(f));
      if (f < 0) sign = -sign;
    }
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (sign > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
  }
  return logAdd(logA0, logA1);
}

/** RDP ε(α) of one step of the sampled Gaussian mechanism. */
export function sampledGaussianRdp(q: number, sigma: number, alpha: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampledGaussianRdp: q must be in [0, 1], got ${q}`);
  if (!(sigma >= 0) || Number.isNaN(sigma)) throw new RangeError(`sampledGaussianRdp: sigma must be ≥ 0, got ${sigma}`);
  if (!(alpha > 1) || !Number.isFinite(alpha)) throw new RangeError(`sampledGaussianRdp: alpha must be a finite order > 1, got ${alpha}`);
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

/** RDP at each order after `steps` compositions. */
export function rdpAfterSteps(q: number, sigma: number, steps: number, orders: readonly number[] = DEFAULT_ORDERS): number[] {
  if (!Number.isInteger(steps) || steps < 0) throw new RangeError(`rdpAfterSteps: steps must be a non-negative integer, got ${steps}`);
  return orders.map((a) => steps * sampledGaussianRdp(q, sigma, a));
}
