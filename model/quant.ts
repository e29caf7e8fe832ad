/**
 * Block quantization of frozen base weights, after GGUF's Q8_0 and Q4_0: the flattened matrix
 * is cut into blocks (32 values by default, as GGUF), each with one float16 scale d.
 * - Q8_0: q = round(x / d), d = max|x| / 127; with 32-blocks 1.0625 bytes/param.
 * - Q4_0: d = m / −8 where m is the value of largest magnitude; q = min(15, ⌊x/d + 8.5⌋) stored
 *   as nibbles (element j of a block in the low nibble of byte j, element j + block/2 in the
 *   high nibble); with 32-blocks 0.5625 bytes/param, with 16-blocks 0.625.
 * A trailing partial block is allowed, so any matrix shape quantizes.
 * Tensors read from GGUF files in ggml's K-quant types (Q4_K, Q5_K, Q6_K) are held natively as
 * their raw 256-value super-blocks (kinds 'q4_k', 'q5_k', 'q6_k'; see {@link nativeQuantized}).
 */
import { fromHalf, toHalf } from './fp16.js';
import { ggmlDecode, ggmlTensorBytes, resolveGgmlType, type GgmlType, type GgmlTypeName } from './ggml-types.js';

/**
 * Quantization of the frozen base held in memory: `none` float32; `int8` Q8_0 (block 32);
 * `int4` Q4_0 (block 16); `native` keeps a GGUF file's own blocks (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)
 * as they are, so nothing is rounded twice, and holds float tensors (F32, F16, BF16) as float32.
 */
export type QuantMode = 'none' | 'int8' | 'int4' | 'native';
/** All {@link QuantMode} values. */
export const QUANT_MODES: readonly QuantMode[] = ['none', 'int8', 'int4', 'native'];
/** GGUF's block size, used for int8. */
export const BLOCK = 32;
/**
 * Block size used for int4: 16 values per fp16 scale (0.625 bytes/param). Measured on
 * stories260K, 32-value blocks cost 3–3.5% in TinyStories loss even with GPTQ; 16 keeps it near 2%.
 */
export const INT4_BLOCK = 16;

/** Kinds of {@link QuantizedArray}: fedtune's q8_0/q4_0 (any even block) or ggml's K-quants (raw super-blocks). */
export type QuantKind = 'q8_0' | 'q4_0' | 'q4_k' | 'q5_k' | 'q6_k';
/** The K-quant kinds, held as raw ggml super-blocks. */
export const K_QUANT_KINDS: readonly QuantKind[] = ['q4_k', 'q5_k', 'q6_k'];

/** A quantized float array. */
export interface QuantizedArray {
  readonly kind: QuantKind;
  /** Number of values represented. */
  readonly length: number;
  /** Values per block (even; 256 for the K-quants). */
  readonly block: number;
  /**
   * Int8 values (q8_0), packed nibbles (q4_0, block/2 bytes per block) or the raw ggml
   * super-blocks (q4_k 144, q5_k 176, q6_k 210 bytes per 256 values, scales included).
   */
  readonly data: Int8Array | Uint8Array;
  /** float16 scale per block (empty for the K-quants: their scales live in `data`). */
  readonly scales: Uint16Array;
}

const K_TYPE: Partial<Record<QuantKind, GgmlTypeName>> = { q4_k: 'Q4_K', q5_k: 'Q5_K', q6_k: 'Q6_K' };

/** Bytes held by a quantized array. */
export function quantizedBytes(q: QuantizedArray): number {
  return q.data.byteLength + q.scales.byteLength;
}

function checkBlock(where: string, block: number): void {
  if (!Number.isInteger(block) || block < 2 || block % 2 !== 0) throw new RangeError(`${where}: block must be an even integer ≥ 2, got ${block}`);
}

/** Quantize to Q8_0. */
export function quantizeQ8(x: Float32Array, block = BLOCK): QuantizedArray {
  checkBlock('quantizeQ8', block);
  const nb = Math.ceil(x.length / block);
  const data = new Int8Array(x.length);
  const scales = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const s = b * block;
    const e = Math.min(s + block, x.length);
    let amax = 0;
    for (let i = s; i < e; i++) amax = Math.max(amax, Math.abs(x[i]));
    const h = toHalf(amax / 127);
    scales[b] = h;
    const d = fromHalf(h);
    const id = d ? 1 / d : 0;
    for (let i = s; i < e; i++) data[i] = Math.max(-127, Math.min(127, Math.round(x[i] * id)));
  }
  return { kind: 'q8_0', length: x.length, block, data, scales };
}

/** The Q4_0 scale of one block: d = m / −8 (m: the value of largest magnitude), as float16 bits. */
export function q4Scale(x: ArrayLike<number>, start: number, end: number): number {
  let amax = 0;
  let max = 0;
  for (let i = start; i < end; i++) {
    if (Math.abs(x[i]) > amax) {
      amax = Math.abs(x[i]);
      max = x[i];
    }
  }
  return toHalf(max / -8);
}

/** The Q4_0 code of x for scale d. */
export function q4Code(x: number, d: number): number {
  return d ? Math.min(15, Math.max(0, Math.floor(x / d + 8.5))) : 8;
}

/** Quantize to Q4_0 with nearest rounding. */
export function quantizeQ4(x: Float32Array, block = BLOCK): QuantizedArray {
  checkBlock('quantizeQ4', block);
  const nb = Math.ceil(x.length / block);
  const data = new Uint8Array(nb * (block / 2)).fill(0x88);
  const scales = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const s = b * block;
    const e = Math.min(s + block, x.length);
    scales[b] = q4Scale(x, s, e);
    const d = fromHalf(scales[b]);
    for (let i = s; i < e; i++) setNibble(data, block, b, i - s, q4Code(x[i], d));
  }
  return { kind: 'q4_0', length: x.length, block, data, scales };
}

/** Store the 4-bit code q of element j of block b. */
export function setNibble(data: Uint8Array, block: number, b: number, j: number, q: number): void {
  const half = block / 2;
  const byte = b * half + (j % half);
  data[byte] = j < half ? (data[byte] & 0xf0) | q : (data[byte] & 0x0f) | (q << 4);
}

/** Quantize with the given mode ('none' is not a quantization), at that mode's block size. */
export function quantize(x: Float32Array, mode: 'int8' | 'int4'): QuantizedArray {
  return mode === 'int8' ? quantizeQ8(x, BLOCK) : quantizeQ4(x, INT4_BLOCK);
}

/**
 * Dequantize values [start, end) of `q` into `out` starting at `outOffset`.
 * Used per forward pass, so the loop is kept branch-light.
 */
export function dequantizeInto(q: QuantizedArray, out: Float32Array, start = 0, end = q.length, outOffset = 0): Float32Array {
  if (start < 0 || end > q.length || start > end) throw new RangeError(`dequantizeInto: range [${start}, ${end}) outside [0, ${q.length})`);
  if (outOffset < 0 || outOffset + (end - start) > out.length) throw new RangeError(`dequantizeInto: out has ${out.length} values, too few for ${end - start} at offset ${outOffset}`);
  const kType = K_TYPE[q.kind];
  if (kType) {
    dequantizeK(kType, q, out, start, end, outOffset);
    return out;
  }
  const o = outOffset - start;
  const block = q.block;
  const half = block / 2;
  let i = start;
  while (i < end) {
    const b = Math.floor(i / block);
    const d = fromHalf(q.scales[b]);
    const s = b * block;
    const blockEnd = Math.min(s + block, end);
    if (q.kind === 'q8_0') {
      const data = q.data as Int8Array;
      for (; i < blockEnd; i++) out[o + i] = data[i] * d;
    } else {
      const data = q.data as Uint8Array;
      const base = b * half;
      for (; i < blockEnd; i++) {
        const j = i - s;
        const byte = data[base + (j % half)];
        out[o + i] = ((j < half ? byte & 0x0f : byte >>> 4) - 8) * d;
      }
    }
  }
  return out;
}

/** Dequantize a whole array. */
export function dequantize(q: QuantizedArray): Float32Array {
  return dequantizeInto(q, new Float32Array(q.length));
}

const kScratch = new Float32Array(256);

/** K-quant [start, end): whole super-blocks straight into `out`, partial ones via a scratch block. */
function dequantizeK(type: GgmlTypeName, q: QuantizedArray, out: Float32Array, start: number, end: number, outOffset: number): void {
  const { block } = q;
  const bytes = ggmlTensorBytes(type, block);
  const raw = q.data as Uint8Array;
  let i = start;
  while (i < end) {
    const b = Math.floor(i / block);
    const s = b * block;
    const blockRaw = raw.subarray(b * bytes);
    if (i === s && end - i >= block) {
      const whole = Math.floor((end - i) / block);
      ggmlDecode(type, blockRaw, whole * block, out, outOffset + (i - start));
      i += whole * block;
    } else {
      ggmlDecode(type, blockRaw, block, kScratch);
      const e = Math.min(s + block, end);
      out.set(kScratch.subarray(i - s, e - s), outOffset + (i - start));
      i = e;
    }
  }
}

/**
 * Hold the raw bytes of a GGUF tensor of `count` values of `type` (Q8_0, Q4_0, Q4_K, Q5_K or
 * Q6_K) as a {@link QuantizedArray} without dequantizing: Q8_0/Q4_0 become the 'q8_0'/'q4_0'
 * kinds with block 32 (scales split out), the K-quants keep a copy of their raw super-blocks.
 * Throws TypeError for other types, RangeError if count is not a whole number of blocks or raw
 * is too short.
 */
export function nativeQuantized(type: GgmlType | GgmlTypeName | number, raw: Uint8Array, count: number): QuantizedArray {
  const t = resolveGgmlType('nativeQuantized', type);
  if (!['Q8_0', 'Q4_0', 'Q4_K', 'Q5_K', 'Q6_K'].includes(t.name)) throw new TypeError(`nativeQuantized: type ${t.name} is not a quantized type (Q8_0, Q4_0, Q4_K, Q5_K or Q6_K)`);
  if (!Number.isSafeInteger(count) || count < 1 || count % t.blockValues !== 0) throw new RangeError(`nativeQuantized: count ${count} is not a positive whole number of ${t.name} blocks of ${t.blockValues}`);
  const bytes = ggmlTensorBytes(t, count);
  if (raw.byteLength < bytes) throw new RangeError(`nativeQuantized: raw has ${raw.byteLength} bytes, fewer than the ${bytes} of ${count} ${t.name} values`);
  if (t.name === 'Q4_K' || t.name === 'Q5_K' || t.name === 'Q6_K') {
    const kind = t.name === 'Q4_K' ? 'q4_k' : t.name === 'Q5_K' ? 'q5_k' : 'q6_k';
    return { kind, length: count, block: t.blockValues, data: raw.slice(0, bytes), scales: new Uint16Array(0) };
  }
  const nb = count / t.blockValues;
  const per = t.blockBytes - 2;
  const data = t.name === 'Q8_0' ? new Int8Array(count) : new Uint8Array(nb * per);
  const dst = new Uint8Array(data.buffer);
  const scales = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const p = b * t.blockBytes;
    scales[b] = raw[p] | (raw[p + 1] << 8);
    dst.set(raw.subarray(p + 2, p + 2 + per), b * per);
  }
  return { kind: t.name === 'Q8_0' ? 'q8_0' : 'q4_0', length: count, block: t.blockValues, data, scales };
}
