/**
 * Update compression (the quantize stage, after clip and noise): unbiased stochastic int8/int4
 * quantization with one float32 scale per block, and top-k sparsification with device-side
 * error feedback. Randomness is injected.
 */
import type { Rng } from '../random/rng.js';

/** A stochastically quantized update. */
export interface QuantizedUpdate {
  readonly bits: 8 | 4;
  readonly length: number;
  readonly block: number;
  /** Signed levels in [−L, L], L = 2^(bits−1) − 1 (int4 values also stored one per byte here). */
  readonly levels: Int8Array;
  /** Step size per block: max|x| / L. */
  readonly scales: Float32Array;
}

/** Bytes this update takes on the wire (int4 packs two levels a byte). */
export function quantizedUpdateBytes(q: QuantizedUpdate): number {
  return (q.bits === 8 ? q.length : Math.ceil(q.length / 2)) + 4 * q.scales.length;
}

/**
 * Quantize with stochastic rounding: each value becomes ⌊x/s⌋ or ⌈x/s⌉ with probabilities that
 * make the expectation exactly x/s, so E[dequantize(q)] = x and |error| < s per value.
 */
export function stochasticQuantize(x: Float32Array, bits: 8 | 4, rng: Rng, block = 256): QuantizedUpdate {
  if (!(x instanceof Float32Array)) throw new TypeError('stochasticQuantize: x must be a Float32Array');
  if (bits !== 8 && bits !== 4) throw new RangeError(`stochasticQuantize: bits must be 8 or 4, got ${bits}`);
  if (!Number.isInteger(block) || block < 1) throw new RangeError(`stochasticQuantize: block must be a positive integer, got ${block}`);
  const L = bits === 8 ? 127 : 7;
  const nb = Math.ceil(x.length / block);
  const levels = new Int8Array(x.length);
  const scales = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const s0 = b * block;
    const e0 = Math.min(s0 + block, x.length);
    let amax = 0;
    for (let i = s0; i < e0; i++) {
      if (!Number.isFinite(x[i])) throw new RangeError(`stochasticQuantize: non-finite value at ${i}`);
      amax = Math.max(amax, Math.abs(x[i]));
    }
    scales[b] = amax / L;
    const s = scales[b]; // the float32 value the receiver will use
    if (s === 0) continue;
    for (let i = s0; i < e0; i++) {
      const t = Math.max(-L, Math.min(L, x[i] / s));
      const lo = Math.floor(t);
      levels[i] = lo + (rng.nextFloat() < t - lo ? 1 : 0);
    }
  }
  return { bits, length: x.length, block, levels, scales };
}

/** Back to float values. */
export function dequantizeUpdate(q: QuantizedUpdate): Float32Array {
  return Float32Array.from(q.levels, (v, i) => v * q.scales[Math.floor(i / q.block)]);
}

/** A sparse update: the k largest-magnitude coordinates. */
export interface SparseUpdate {
  readonly length: number;
  readonly indices: Uint32Array;
  readonly values: Float32Array;
}

/** Keep the k coordinates of largest magnitude (ties to the lower index). */
export function topK(x: Float32Array, k: number): SparseUpdate {
  if (!(x instanceof Float32Array)) throw new TypeError('topK: x must be a Float32Array');
  if (!Number.isInteger(k) || k < 1 || k > x.length) throw new RangeError(`topK: k must be an integer in [1, ${x.length}], got ${k}`);
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw new RangeError(`topK: non-finite value at ${i}`);
  const idx = Array.from({ length: x.length }, (_, i) => i).sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b).slice(0, k).sort((a, b) => a - b);
  return { length: x.length, indices: Uint32Array.from(idx), values: Float32Array.from(idx, (i) => x[i]) };
}

/** Dense form of a sparse update. */
export function densify(s: SparseUpdate): Float32Array {
  const out = new Float32Array(s.length);
  s.indices.forEach((i, j) => (out[i] = s.values[j]));
  return out;
}

/**
 * Device-side error feedback for top-k: what was not sent is kept and added to the next
 * update, so every coordinate is eventually transmitted and nothing is lost on average.
 */
export class ErrorFeedback {
  private residual: Float32Array;

  constructor(readonly length: number) {
    if (!Number.isInteger(length) || length < 1) throw new RangeError(`ErrorFeedback: length must be a positive integer, got ${length}`);
    this.residual = new Float32Array(length);
  }

  /** Compress update + residual to its top k; remember the rest. */
  compress(update: Float32Array, k: number): SparseUpdate {
    if (!(update instanceof Float32Array)) throw new TypeError('ErrorFeedback.compress: update must be a Float32Array');
    if (update.length !== this.length) throw new RangeError(`ErrorFeedback.compress: update has ${update.length} values, expected ${this.length}`);
    const corrected = Float32Array.from(update, (v, i) => v + this.residual[i]);
    const sent = topK(corrected, k);
    this.residual = corrected;
    sent.indices.forEach((i) => (this.residual[i] = 0));
    return sent;
  }
}
