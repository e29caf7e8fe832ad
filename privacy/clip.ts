/**
 * Clipping stage: scale an update so its L2 norm is at most C (the first stage of every
 * update: clip → noise → quantize → encrypt/mask). Pure; returns a new array.
 */

/**
 * Relative float margin of every clip bound C, in one place: {@link clipToNorm} lands a clipped
 * update at most C·(1 − CLIP_TOLERANCE) so float32 rounding cannot carry it past C, and a
 * receiver checking the bound ({@link withinClipBound}) allows C·(1 + CLIP_TOLERANCE).
 */
export const CLIP_TOLERANCE = 1e-6;

/**
 * Does an update of L2 norm `norm` respect clip bound `c`, allowing {@link CLIP_TOLERANCE} and
 * `slack` (how far quantization may have moved it in L2, from decodeUpdate)?
 */
export function withinClipBound(norm: number, c: number, slack = 0): boolean {
  if (typeof c !== 'number' || !(c > 0) || !Number.isFinite(c)) throw new RangeError(`withinClipBound: c must be a positive finite number, got ${c}`);
  if (typeof slack !== 'number' || !(slack >= 0) || !Number.isFinite(slack)) throw new RangeError(`withinClipBound: slack must be a finite number ≥ 0, got ${slack}`);
  return norm <= c * (1 + CLIP_TOLERANCE) + slack;
}

/** The result of {@link clipToNorm}. */
export interface Clipped {
  readonly update: Float32Array;
  /** L2 norm before clipping. */
  readonly norm: number;
  /** True if the update was scaled down (its norm exceeded C). */
  readonly clipped: boolean;
}

/** L2 norm, accumulated in float64. */
export function l2Norm(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s);
}

/** Scale `update` by min(1, C / ‖update‖) (a hair under C, see {@link CLIP_TOLERANCE}). Throws RangeError on a bad C or non-finite values. */
export function clipToNorm(update: Float32Array, c: number): Clipped {
  if (!(update instanceof Float32Array)) throw new TypeError('clipToNorm: update must be a Float32Array');
  if (typeof c !== 'number' || !(c > 0) || !Number.isFinite(c)) throw new RangeError(`clipToNorm: c must be a positive finite number, got ${c}`);
  const norm = l2Norm(update);
  if (!Number.isFinite(norm)) throw new RangeError('clipToNorm: update holds non-finite values');
  if (norm <= c) return { update: Float32Array.from(update), norm, clipped: false };
  // scale a little under C so float32 rounding cannot leave the result above it
  const f = (c / norm) * (1 - CLIP_TOLERANCE);
  return { update: Float32Array.from(update, (v) => v * f), norm, clipped: true };
}
