/**
 * Noise calibration: the smallest noise multiplier σ such that `steps` rounds of the sampled
 * Gaussian mechanism at sampling rate q stay within (ε, δ), found by bisection (ε falls as σ
 * grows).
 */
import { rdpToEpsilon, type Conversion } from './conversion.js';
import { DEFAULT_ORDERS, rdpAfterSteps } from './rdp.js';

/** (ε, δ) spent by `steps` sampled-Gaussian steps. */
export function epsilonFor(q: number, sigma: number, steps: number, delta: number, conversion: Conversion = 'improved', orders: readonly number[] = DEFAULT_ORDERS): { epsilon: number; order: number } {
  return rdpToEpsilon(orders, rdpAfterSteps(q, sigma, steps, orders), delta, conversion);
}

/** The noise multiplier that spends (just under) `epsilon` at `delta`. */
export function calibrateSigma(q: number, steps: number, epsilon: number, delta: number, conversion: Conversion = 'improved'): number {
  return smallestSigma('calibrateSigma', steps, epsilon, (s) => epsilonFor(q, s, steps, delta, conversion).epsilon, { lo: 1e-3, max: 1e6, tol: 1e-6 });
}

/**
 * The smallest σ (to `tol`, relative) with eps(σ) ≤ epsilon, by doubling then bisection (ε falls
 * as σ grows): the search every accountant's calibration shares.
 */
export function smallestSigma(where: string, steps: number, epsilon: number, eps: (sigma: number) => number, range: { lo: number; max: number; tol: number }): number {
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`${where}: epsilon must be a positive number, got ${epsilon}`);
  if (!Number.isInteger(steps) || steps <= 0) throw new RangeError(`${where}: steps must be a positive integer, got ${steps}`);
  let lo = range.lo;
  let hi = 1;
  while (eps(hi) > epsilon) {
    lo = hi;
    hi *= 2;
    if (hi > range.max) throw new RangeError(`${where}: no noise multiplier up to ${range.max} reaches ε = ${epsilon}`);
  }
  if (eps(lo) <= epsilon) return lo;
  for (let k = 0; k < 100 && hi - lo > range.tol * hi; k++) {
    const mid = (lo + hi) / 2;
    if (eps(mid) > epsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}
