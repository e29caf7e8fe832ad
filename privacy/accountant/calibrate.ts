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
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`calibrateSigma: epsilon must be a positive number, got ${epsilon}`);
  if (!Number.isInteger(steps) || steps <= 0) throw new RangeError(`calibrateSigma: steps must be a positive integer, got ${steps}`);
  const eps = (s: number): number => epsilonFor(q, s, steps, delta, conversion).epsilon;
  let lo = 1e-3;
  let hi = 1;
  while (eps(hi) > epsilon) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) throw new RangeError(`calibrateSigma: no noise multiplier up to 1e6 reaches ε = ${epsilon}`);
  }
  if (eps(lo) <= epsilon) return lo;
  for (let k = 0; k < 60 && hi - lo > 1e-6 * hi; k++) {
    const mid = (lo + hi) / 2;
    if (eps(mid) > epsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}
