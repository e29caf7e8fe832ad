/**
 * The GGML tensor types fedtune reads and writes, in one table (ids as in ggml.h), with their
 * block sizes and byte encoders/decoders:
 * - F32, F16, BF16: one value per "block" (4, 2, 2 bytes little-endian);
 * - Q8_0 (34 bytes / 32): f16 d, int8 q[32]; value = d·q;
 * - Q4_0 (18 bytes / 32): f16 d, qs[16] with element j in the low nibble of byte j and element
 *   j+16 in the high nibble; value = d·(q − 8);
 * - Q4_K (144 / 256), Q5_K (176 / 256), Q6_K (210 / 256): K-quant super-blocks, see kquant-decode.ts.
 * Decoding reproduces ggml's float32 results bit for bit.
 */
import { fromBf16, fromHalf, toBf16, toHalf } from './fp16.js';
import { decodeQ4K, decodeQ5K, decodeQ6K, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, QK_K } from './kquant-decode.js';
import { encodeQ4K, encodeQ5K, encodeQ6K } from './kquant-encode.js';

/** Names of the supported GGML tensor types. */
export type GgmlTypeName = 'F32' | 'F16' | 'Q4_0' | 'Q8_0' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'BF16';

/** One GGML tensor type: its ggml id, name, values per block and bytes per block. */
export interface GgmlType {
  readonly id: number;
  readonly name: GgmlTypeName;
  readonly blockValues: number;
  readonly blockBytes: number;
}

/** All supported GGML tensor types, by name. */
export const GGML_TYPES: Readonly<Record<GgmlTypeName, GgmlType>> = Object.freeze({
  F32: { id: 0, name: 'F32', blockValues: 1, blockBytes: 4 },
  F16: { id: 1, name: 'F16', blockValues: 1, blockBytes: 2 },
  Q4_0: { id: 2, name: 'Q4_0', blockValues: 32, blockBytes: 18 },
  Q8_0: { id: 8, name: 'Q8_0', blockValues: 32, blockBytes: 34 },
  Q4_K: { id: 12, name: 'Q4_K', blockValues: QK_K, blockBytes: Q4_K_BYTES },
  Q5_K: { id: 13, name: 'Q5_K', blockValues: QK_K, blockBytes: Q5_K_BYTES },
  Q6_K: { id: 14, name: 'Q6_K', blockValues: QK_K, blockBytes: Q6_K_BYTES },
  BF16: { id: 30, name: 'BF16', blockValues: 1, blockBytes: 2 },
} as const);

const BY_ID = new Map<number, GgmlType>(Object.values(GGML_TYPES).map((t) => [t.id, t]));

/** The type with ggml id `id`, or undefined if fedtune does not support it. */
export function ggmlType(id: number): GgmlType | undefined {
  return BY_ID.get(id);
}

/** The type named `name` (e.g. 'Q4_K'), or undefined if fedtune does not support it. */
export function ggmlTypeByName(name: string): GgmlType | undefined {
  return Object.prototype.hasOwnProperty.call(GGML_TYPES, name) ? GGML_TYPES[name as GgmlTypeName] : undefined;
}

/** A type given as a table entry, name or id; throws TypeError naming `fn` if unsupported. */
export function resolveGgmlType(fn: string, type: GgmlType | GgmlTypeName | number): GgmlType {
  const t = typeof type === 'number' ? ggmlType(type) : typeof type === 'string' ? ggmlTypeByName(type) : type;
  if (!t || ggmlType(t.id) !== t) throw new TypeError(`${fn}: type ${typeof type === 'object' ? JSON.stringify(type) : String(type)} is not a supported GGML type (${Object.keys(GGML_TYPES).join(', ')})`);
  return t;
}

/** Bytes of `count` values of `type`; throws RangeError unless count is a whole number of blocks. */
export function ggmlTensorBytes(type: GgmlType | GgmlTypeName | number, count: number): number {
  const t = resolveGgmlType('ggmlTensorBytes', type);
  if (!Number.isSafeInteger(count) || count < 0 || count % t.blockValues !== 0) {
    throw new RangeError(`ggmlTensorBytes: count ${count} is not a whole number of ${t.name} blocks of ${t.blockValues}`);
  }
  return (count / t.blockValues) * t.blockBytes;
}

/**
 * Dequantize `count` values of `type` from `raw` (which starts at a block boundary) into `out`
 * from `outOffset`, bit for bit as ggml does. count must be a whole number of blocks.
 */
export function ggmlDecode(type: GgmlType | GgmlTypeName | number, raw: Uint8Array, count: number, out: Float32Array, outOffset = 0): Float32Array {
  const t = resolveGgmlType('ggmlDecode', type);
  if (!Number.isSafeInteger(count) || count < 0 || count % t.blockValues !== 0) {
    throw new RangeError(`ggmlDecode: count ${count} is not a whole number of ${t.name} blocks of ${t.blockValues}`);
  }
  const bytes = (count / t.blockValues) * t.blockBytes;
  if (raw.byteLength < bytes) throw new RangeError(`ggmlDecode: raw has ${raw.byteLength} bytes, fewer than the ${bytes} of ${count} ${t.name} values`);
  if (!Number.isInteger(outOffset) || outOffset < 0 || outOffset + count > out.length) {
    throw new RangeError(`ggmlDecode: out has ${out.length} values, too few for ${count} at offset ${outOffset}`);
  }
  const nb = count / t.blockValues;
  const u16 = (p: number): number => raw[p] | (raw[p + 1] << 8);
  let o = outOffset;
  switch (t.name) {
    case 'F32': {
      const dv = new DataView(raw.buffer, raw.byteOffset, bytes);
      for (let i = 0; i < count; i++) out[o++] = dv.getFloat32(4 * i, true);
      break;
    }
    case 'F16': for (let i = 0; i < count; i++) out[o++] = fromHalf(u16(2 * i)); break;
    case 'BF16': for (let i = 0; i < count; i++) out[o++] = fromBf16(u16(2 * i)); break;
    case 'Q8_0':
      for (let b = 0, p = 0; b < nb; b++, p += 34) {
        const d = fromHalf(u16(p));
        for (let j = 0; j < 32; j++) out[o++] = d * ((raw[p + 2 + j] << 24) >> 24);
      }
      break;
    case 'Q4_0':
      for (let b = 0, p = 0; b < nb; b++, p += 18, o += 32) {
        const d = fromHalf(u16(p));
        for (let j = 0; j < 16; j++) {
          out[o + j] = ((raw[p + 2 + j] & 0x0f) - 8) * d;
          out[o + j + 16] = ((raw[p + 2 + j] >>> 4) - 8) * d;
        }
      }
      break;
    case 'Q4_K': decodeQ4K(raw, 0, nb, out, o); break;
    case 'Q5_K': decodeQ5K(raw, 0, nb, out, o); break;
    case 'Q6_K': decodeQ6K(raw, 0, nb, out, o); break;
  }
  return out;
}

/** Bytes into a block where its f16 scales sit (d, and dmin for Q4_K/Q5_K), by block type. */
const SCALE_OFFSETS: Readonly<Partial<Record<GgmlTypeName, readonly number[]>>> = {
  Q4_0: [0],
  Q8_0: [0],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q6_K: [Q6_K_BYTES - 2],
};

/**
 * The first value (float types) or block (quantized types: its f16 scales d and dmin) of `count`
 * values of `type` in `raw` that is NaN or infinite, as ggml's ggml_validate_row_data checks;
 * -1 when all are finite. count must be a whole number of blocks that `raw` holds.
 */
export function ggmlFirstNonFinite(type: GgmlType | GgmlTypeName | number, raw: Uint8Array, count: number): number {
  const t = resolveGgmlType('ggmlFirstNonFinite', type);
  const bytes = ggmlTensorBytes(t, count);
  if (raw.byteLength < bytes) throw new RangeError(`ggmlFirstNonFinite: raw has ${raw.byteLength} bytes, fewer than the ${bytes} of ${count} ${t.name} values`);
  const u16 = (p: number): number => raw[p] | (raw[p + 1] << 8);
  if (t.name === 'F32') {
    const dv = new DataView(raw.buffer, raw.byteOffset, bytes);
    for (let i = 0; i < count; i++) if (!Number.isFinite(dv.getFloat32(4 * i, true))) return i;
    return -1;
  }
  // an f16 is NaN or infinite when its 5 exponent bits are all ones; a bf16 when its 8 are
  if (t.name === 'F16' || t.name === 'BF16') {
    const mask = t.name === 'F16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < count; i++) if ((u16(2 * i) & mask) === mask) return i;
    return -1;
  }
  const at = SCALE_OFFSETS[t.name]!;
  for (let b = 0, p = 0; b < count / t.blockValues; b++, p += t.blockBytes) {
    for (const o of at) if ((u16(p + o) & 0x7c00) === 0x7c00) return b;
  }
  return -1;
}

/** C's roundf: halves away from zero. */
const roundAway = (v: number): number => Math.sign(v) * Math.round(Math.abs(v));

function encodeQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const h = toHalf(d);
    out[b * 34] = h & 0xff;
    out[b * 34 + 1] = h >>> 8;
    for (let j = 0; j < 32; j++) out[b * 34 + 2 + j] = roundAway(Math.fround(x[b * 32 + j] * id)) & 0xff;
  }
  return out;
}

function encodeQ4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 18);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const h = toHalf(d);
    out[b * 18] = h & 0xff;
    out[b * 18 + 1] = h >>> 8;
    const q = (v: number): number => Math.min(15, Math.trunc(Math.fround(Math.fround(v * id) + 8.5)));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q(x[b * 32 + j]) | (q(x[b * 32 + 16 + j]) << 4);
  }
  return out;
}

/** Options of {@link ggmlEncode}. */
export interface GgmlEncodeOptions {
  /** K-quants: take each sub-block's min/max scales without searching (much quicker, a little less accurate). Default false. */
  readonly fast?: boolean;
}

/**
 * Encode values as `type` tensor bytes (for writing test and bench files): F32/F16/BF16 round to
 * nearest even; Q8_0 and Q4_0 quantize as ggml's reference quantizer; K-quants see kquant-encode.ts.
 * Throws RangeError unless x is a whole number of blocks.
 */
export function ggmlEncode(type: GgmlType | GgmlTypeName | number, x: Float32Array, options: GgmlEncodeOptions = {}): Uint8Array {
  const t = resolveGgmlType('ggmlEncode', type);
  if (options === null || typeof options !== 'object') throw new TypeError('ggmlEncode: options must be an object');
  const fast = options.fast === true;
  if (x.length % t.blockValues !== 0) throw new RangeError(`ggmlEncode: x has ${x.length} values, not a whole number of ${t.name} blocks of ${t.blockValues}`);
  switch (t.name) {
    case 'F32': {
      const out = new Uint8Array(x.length * 4);
      const dv = new DataView(out.buffer);
      for (let i = 0; i < x.length; i++) dv.setFloat32(4 * i, x[i], true);
      return out;
    }
    case 'F16': case 'BF16': {
      const out = new Uint8Array(x.length * 2);
      const conv = t.name === 'F16' ? toHalf : toBf16;
      for (let i = 0; i < x.length; i++) {
        const h = conv(x[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >>> 8;
      }
      return out;
    }
    case 'Q8_0': return encodeQ8_0(x);
    case 'Q4_0': return encodeQ4_0(x);
    case 'Q4_K': return encodeQ4K(x, fast);
    case 'Q5_K': return encodeQ5K(x, fast);
    case 'Q6_K': return encodeQ6K(x, fast);
  }
}
