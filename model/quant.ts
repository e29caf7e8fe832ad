/**
 * Block quantization of frozen base weights, after GGUF's Q8_0 and Q4_0: the flattened
 * matrix is cut into blocks of 32 values, each with one float16 scale.
 * - Q8_0: q = round(x / d), d = max|x| / 127; 32 int8 + 2 bytes = 1.0625 bytes/param.
 * - Q4_0: d = m / -8 where m is the value of largest magnitude; q = min(15, ⌊x/d + 8.5⌋) stored
 *   as nibbles (value j in the low nibble, j+16 in the high); 16 + 2 bytes = 0.5625 bytes/param.
 * A trailing partial block is allowed, so any matrix shape quantizes.
 */
import { fromHalf, toHalf } from './fp16.js';

/** Quantization of the frozen base held in memory. */
export type QuantMode = 'none' | 'int8' | 'int4';
/** All {@link QuantMode} values. */
export const QUANT_MODES: readonly QuantMode[] = ['none', 'int8', 'int4'];
/** Values per block. */
export const BLOCK = 32;

/** A quantized float array. */
export interface QuantizedArray {
  readonly kind: 'q8_0' | 'q4_0';
  /** Number of values represented. */
  readonly length: number;
  /** Int8 values (q8_0) or packed nibbles (q4_0, 16 bytes per block). */
  readonly data: Int8Array | Uint8Array;
  /** float16 scale per block. */
  readonly scales: Uint16Array;
}

/** Bytes held by a quantized array. */
export function quantizedBytes(q: QuantizedArray): number {
  return q.data.byteLength + q.scales.byteLength;
}

/** Quantize to Q8_0. */
export function quantizeQ8(x: Float32Array): QuantizedArray {
  const nb = Math.ceil(x.length / BLOCK);
  const data = new Int8Array(x.length);
  const scales = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const s = b * BLOCK;
    const e = Math.min(s + BLOCK, x.length);
    let amax = 0;
    for (let i = s; i < e; i++) amax = Math.max(amax, Math.abs(x[i]));
    const h = toHalf(amax / 127);
    scales[b] = h;
    const d = fromHalf(h);
    const id = d ? 1 / d : 0;
    for (let i = s; i < e; i++) data[i] = Math.max(-127, Math.min(127, Math.round(x[i] * id)));
  }
  return { kind: 'q8_0', length: x.length, data, scales };
}

/** Quantize to Q4_0 with the reference rule d = m / −8 (m: the block's value of largest magnitude). */
export function quantizeQ4(x: Float32Array): QuantizedArray {
  const nb = Math.ceil(x.length / BLOCK);
  const data = new Uint8Array(nb * (BLOCK / 2)).fill(0x88);
  const scales = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const s = b * BLOCK;
    const e = Math.min(s + BLOCK, x.length);
    let amax = 0;
    let max = 0;
    for (let i = s; i < e; i++) {
      if (Math.abs(x[i]) > amax) {
        amax = Math.abs(x[i]);
        max = x[i];
      }
    }
    const h = toHalf(max / -8);
    scales[b] = h;
    const d = fromHalf(h);
    const id = d ? 1 / d : 0;
    for (let i = s; i < e; i++) setNibble(data, b, i - s, Math.min(15, Math.max(0, Math.floor(x[i] * id + 8.5))));
  }
  return { kind: 'q4_0', length: x.length, data, scales };
}

/** Store 4-bit value q for element j (0…31) of block b: j in the low nibble of byte j, j+16 in the high. */
export function setNibble(data: Uint8Array, b: number, j: number, q: number): void {
  const byte = b * (BLOCK / 2) + (j & 15);
  data[byte] = j < 16 ? (data[byte] & 0xf0) | q : (data[byte] & 0x0f) | (q << 4);
}

/** Quantize with the given mode ('none' is not a quantization). */
export function quantize(x: Float32Array, mode: Exclude<QuantMode, 'none'>): QuantizedArray {
  return mode === 'int8' ? quantizeQ8(x) : quantizeQ4(x);
}

/**
 * Dequantize values [start, end) of `q` into `out` starting at `outOffset`.
 * Used per forward pass, so the loop is kept branch-light.
 */
export function dequantizeInto(q: QuantizedArray, out: Float32Array, start = 0, end = q.length, outOffset = 0): Float32Array {
  if (start < 0 || end > q.length || start > end) throw new RangeError(`dequantizeInto: range [${start}, ${end}) outside [0, ${q.length})`);
  const o = outOffset - start;
  let i = start;
  while (i < end) {
    const b = Math.floor(i / BLOCK);
    const d = fromHalf(q.scales[b]);
    const blockEnd = Math.min((b + 1) * BLOCK, end);
    if (q.kind === 'q8_0') {
      const data = q.data as Int8Array;
      for (; i < blockEnd; i++) out[o + i] = data[i] * d;
    } else {
      const data = q.data as Uint8Array;
      const base = b * (BLOCK / 2);
      const s = b * BLOCK;
      for (; i < blockEnd; i++) {
        const j = i - s;
        const byte = data[base + (j & 15)];
        out[o + i] = ((j < 16 ? byte & 0x0f : byte >>> 4) - 8) * d;
      }
    }
  }
  return out;
}

/** Dequantize a whole array. */
export function dequantize(q: QuantizedArray): Float32Array {
  return dequantizeInto(q, new Float32Array(q.length));
}
