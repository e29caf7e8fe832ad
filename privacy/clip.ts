/**
 * Clipping stage: scale an update so its L2 norm is at most C (the first stage of every
 * update: clip → noise → quantize → encrypt/mask). Pure; returns a new array.
 */

/** The result of {@link clipToNorm}. */
export interface Clipped {
  readonly update: Float32Array;
  /** L2 norm before clipping. */
  readonly norm: number;
  /** True if the update was scaled down (its norm exceeded C). */
  readonly clipped: boolean;
}

/**
 * The clip tolerances, in one place. `CLIP_UNDERSHOOT`: clipToNorm scales a little under C so
 * float32 rounding cannot leave the result above it. `CLIP_ACCEPT_TOLERANCE`: a receiver accepts
 * a norm up to C·(1 + this) plus the update's own quantization slack (see {@link withinClip}).
 */
export const CLIP_UNDERSHOOT = 1e-6;
/** See {@link CLIP_UNDERSHOOT}. */
export const CLIP_ACCEPT_TOLERANCE = 1e-5;

/** True if an update of L2 norm `norm` honours clip bound `c`, allowing its quantization `slack` (0 for float32). */
export function withinClip(norm: number, c: number, slack = 0): boolean {
  return Number.isFinite(norm) && norm <= c * (1 + CLIP_ACCEPT_TOLERANCE) + slack;
}

/** L2 norm, accumulated in float64. */
export function l2Norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** Scale `update` by min(1, C / ‖update‖). Throws RangeError on a bad C or non-finite values. */
export function clipToNorm(update: Float32Array, c: number): Clipped {
  if (!(update instanceof Float32Array)) throw new TypeError('clipToNorm: update must be a Float32Array');
  if (typeof c !== 'number' || !(c > 0) || !Number.isFinite(c)) throw new RangeError(`clipToNorm: c must be a positive finite number, got ${c}`);
  const norm = l2Norm(update);
  if (!Number.isFinite(norm)) throw new RangeError('clipToNorm: update holds non-finite values');
  if (norm <= c) return { update: Float32Array.from(update), norm, clipped: false };
  // scale a little under C so float32 rounding cannot leave the result above it
  const f = (c / norm) * (1 - CLIP_UNDERSHOOT);
  return { update: Float32Array.from(update, (v) => v * f), norm, clipped: true };
}
