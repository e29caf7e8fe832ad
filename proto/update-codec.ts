/**
 * Update payloads wire ↔ domain: the plaintext encodings of a flat update before sealing. The
 * codec only serialises; clipping, noise and quantization happen before (client/build-update).
 */
import type { QuantizedUpdate } from '../privacy/compress.js';
import { WireFormatError } from './wire-error.js';

/** True on a little-endian host (the wire's byte order): f32 bytes then decode with one copy. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Plaintext encodings of an update (before sealing): "f32" little-endian float32 per value;
 * "q8" / "q4" an update already quantized by privacy/compress (unbiased, stochastic) in blocks of
 * {@link UPDATE_QUANT_BLOCK}: a float32 scale per block, then one int8 level per value (q8) or
 * two 4-bit two's-complement levels per byte, low nibble first (q4); "masked" a SecAgg masked
 * input, little-endian uint32 per value in Z_(2^32).
 */
export const UPDATE_ENCODINGS = ['f32', 'q8', 'q4', 'masked'] as const;
/** One of {@link UPDATE_ENCODINGS}. */
export type UpdateEncoding = (typeof UPDATE_ENCODINGS)[number];
/** Values per quantization block of q8/q4 updates. */
export const UPDATE_QUANT_BLOCK = 256;

/** True for a known encoding. */
export function isUpdateEncoding(e: string): e is UpdateEncoding {
  return (UPDATE_ENCODINGS as readonly string[]).includes(e);
}

/** Plaintext bytes of an update of `n` values in an encoding. */
export function encodedUpdateBytes(encoding: UpdateEncoding, n: number): number {
  const scales = 4 * Math.ceil(n / UPDATE_QUANT_BLOCK);
  return encoding === 'f32' || encoding === 'masked' ? 4 * n : encoding === 'q8' ? scales + n : scales + Math.ceil(n / 2);
}

/**
 * An update as plaintext bytes, serialised as it is — the codec does not quantize (that is the
 * pipeline's quantize stage, privacy/compress): a Float32Array goes out as "f32"; a
 * {@link QuantizedUpdate} in blocks of {@link UPDATE_QUANT_BLOCK} as "q8" or "q4" (its bits).
 */
export function encodeUpdate(update: Float32Array | QuantizedUpdate): Uint8Array {
  if (update instanceof Float32Array) {
    const out = new Uint8Array(encodedUpdateBytes('f32', update.length));
    const dv = new DataView(out.buffer);
    for (let i = 0; i < update.length; i++) dv.setFloat32(i * 4, update[i], true);
    return out;
  }
  const q = checkQuantized(update);
  const n = q.length;
  const out = new Uint8Array(encodedUpdateBytes(q.bits === 8 ? 'q8' : 'q4', n));
  const dv = new DataView(out.buffer);
  q.scales.forEach((s, b) => dv.setFloat32(b * 4, s, true));
  const body = 4 * q.scales.length;
  if (q.bits === 8) out.set(new Uint8Array(q.levels.buffer, q.levels.byteOffset, n), body);
  else for (let i = 0; i < n; i++) out[body + (i >> 1)] |= (q.levels[i] & 0xf) << ((i & 1) * 4);
  return out;
}

/** A quantized update the wire format can carry exactly as decodeUpdate will read it; TypeError/RangeError otherwise. */
function checkQuantized(q: QuantizedUpdate): QuantizedUpdate {
  if (typeof q !== 'object' || q === null || !(q.levels instanceof Int8Array) || !(q.scales instanceof Float32Array)) {
    throw new TypeError('encodeUpdate: update must be a Float32Array or a QuantizedUpdate (Int8Array levels, Float32Array scales)');
  }
  if (q.bits !== 8 && q.bits !== 4) throw new RangeError(`encodeUpdate: a quantized update has 8 or 4 bits, got ${String(q.bits)}`);
  if (q.block !== UPDATE_QUANT_BLOCK) throw new RangeError(`encodeUpdate: the wire format quantizes in blocks of ${UPDATE_QUANT_BLOCK}, got ${q.block}`);
  if (q.levels.length !== q.length) throw new RangeError(`encodeUpdate: ${q.levels.length} levels for ${q.length} values`);
  if (q.scales.length !== Math.ceil(q.length / UPDATE_QUANT_BLOCK)) throw new RangeError(`encodeUpdate: ${q.scales.length} scales for ${q.length} values in blocks of ${UPDATE_QUANT_BLOCK}`);
  const limit = q.bits === 8 ? 127 : 7;
  q.scales.forEach((s, b) => {
    if (!Number.isFinite(s) || s < 0) throw new RangeError(`encodeUpdate: scale ${b} is ${s}; scales must be finite and ≥ 0`);
  });
  q.levels.forEach((v, i) => {
    if (v < -limit || v > limit) throw new RangeError(`encodeUpdate: level ${v} at ${i} is outside ±${limit}`);
  });
  return q;
}

/**
 * Plaintext bytes → a flat update of `expectedLength` values, with `slack`: a bound on how far
 * quantization may have moved it in L2 (0 for f32), so a norm check can allow for it.
 * WireFormatError if the bytes do not fit.
 */
export function decodeUpdate(encoding: string, bytes: Uint8Array, expectedLength: number): { update: Float32Array; slack: number } {
  if (!isUpdateEncoding(encoding)) throw new WireFormatError(`unknown update encoding "${encoding}"; expected one of ${UPDATE_ENCODINGS.join(', ')}`);
  const want = encodedUpdateBytes(encoding, expectedLength);
  if (bytes.length !== want) throw new WireFormatError(`the update has ${bytes.length} bytes, but a "${encoding}" update of this program's ${expectedLength} values is ${want} bytes`);
  if (encoding === 'masked') throw new WireFormatError('a masked input is not a float update; use decodeMasked');
  // f32 on a little-endian host: the bytes are the values (one memcpy)
  if (encoding === 'f32' && LITTLE_ENDIAN) return { update: new Float32Array(bytes.slice().buffer), slack: 0 };
  const out = new Float32Array(expectedLength);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (encoding === 'f32') {
    for (let i = 0; i < expectedLength; i++) out[i] = dv.getFloat32(i * 4, true);
    return { update: out, slack: 0 };
  }
  const nb = Math.ceil(expectedLength / UPDATE_QUANT_BLOCK);
  const body = 4 * nb;
  const limit = encoding === 'q8' ? 127 : 7;
  let slack2 = 0;
  for (let b = 0; b < nb; b++) {
    const s = dv.getFloat32(b * 4, true);
    if (!Number.isFinite(s) || s < 0) throw new WireFormatError(`quantization scale ${b} is ${s}; scales must be finite and ≥ 0`);
    const lo = b * UPDATE_QUANT_BLOCK;
    const hi = Math.min(lo + UPDATE_QUANT_BLOCK, expectedLength);
    slack2 += (hi - lo) * s * s;
    for (let i = lo; i < hi; i++) {
      const level = encoding === 'q8' ? (bytes[body + i] << 24) >> 24 : (((bytes[body + (i >> 1)] >> ((i & 1) * 4)) & 0xf) << 28) >> 28;
      if (level < -limit) throw new WireFormatError(`level ${level} at ${i} is outside ±${limit}`);
      out[i] = level * s;
    }
  }
  return { update: out, slack: Math.sqrt(slack2) };
}

/** A SecAgg masked input as plaintext bytes (little-endian uint32). */
export function encodeMasked(y: Uint32Array): Uint8Array {
  const out = new Uint8Array(4 * y.length);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < y.length; i++) dv.setUint32(4 * i, y[i], true);
  return out;
}

/** Plaintext bytes → a masked input of `expectedLength` values; WireFormatError if they do not fit. */
export function decodeMasked(bytes: Uint8Array, expectedLength: number): Uint32Array {
  if (bytes.length !== 4 * expectedLength) throw new WireFormatError(`the masked input has ${bytes.length} bytes, expected ${4 * expectedLength}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint32Array.from({ length: expectedLength }, (_, i) => dv.getUint32(4 * i, true));
}
