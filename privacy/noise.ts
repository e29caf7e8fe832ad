/**
 * Gaussian noise stage. Central DP adds N(0, (zC)²) to the sum of clipped updates; local DP
 * has each device add it; distributed DP has each of n devices add N(0, (zC)²/n) so that the
 * sum carries the target — with secure aggregation, pass the fewest devices that can survive
 * (the SecAgg threshold), not the cohort, or dropouts leave the sum under-noised. The argument
 * is a *standard deviation* (not a variance). Randomness
 * is injected: cryptoRng() in production, seededRng() in tests.
 */
import { nextGaussian, type Rng } from '../random/rng.js';

/** Standard deviation of the noise each party adds for noise multiplier z, clip C. */
export function noiseStd(mode: 'central' | 'local' | 'distributed', z: number, clip: number, parties = 1): number {
  if (!(z >= 0) || !Number.isFinite(z)) throw new RangeError(`noiseStd: z must be a finite number ≥ 0, got ${z}`);
  if (!(clip > 0) || !Number.isFinite(clip)) throw new RangeError(`noiseStd: clip must be a positive number, got ${clip}`);
  if (mode === 'distributed') {
    if (!Number.isInteger(parties) || parties < 1) throw new RangeError(`noiseStd: parties must be a positive integer, got ${parties}`);
    return (z * clip) / Math.sqrt(parties);
  }
  if (mode !== 'central' && mode !== 'local') throw new RangeError(`noiseStd: mode must be central, local or distributed, got "${String(mode)}"`);
  return z * clip;
}

/** A new array: x + N(0, std²) per coordinate, drawn from `rng`. */
export function addGaussianNoise(x: Float32Array | Float64Array, std: number, rng: Rng): Float64Array {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`addGaussianNoise: std must be a finite number ≥ 0, got ${std}`);
  const out = Float64Array.from(x);
  if (std === 0) return out;
  for (let i = 0; i < out.length; i++) out[i] += std * nextGaussian(rng);
  return out;
}

/**
 * A bound on the L2 norm of `n` independent N(0, std²) values that is exceeded with probability
 * below 1e-13: std·(√n + 8) (the norm is 1-Lipschitz in the noise, so P(‖g‖ ≥ std(√n + t)) ≤
 * exp(−t²/2)). A receiver checking the clip bound of an update a device noised itself (local or
 * distributed DP without secure aggregation) allows this much on top of C.
 */
export function noiseNormBound(std: number, n: number): number {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noiseNormBound: std must be a finite number ≥ 0, got ${std}`);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`noiseNormBound: n must be an integer ≥ 0, got ${n}`);
  return std === 0 || n === 0 ? 0 : std * (Math.sqrt(n) + 8);
}
