/**
 * Writer for GGUF v3 files (little-endian), laid out as llama.cpp's gguf writer does: header,
 * metadata, tensor infos, padding to `general.alignment`, then each tensor's data padded to it.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { ggmlEncode, GGML_TYPES, type GgmlEncodeOptions, type GgmlTypeName } from './ggml-types.js';
import type { GgufValue } from './gguf.js';

/** GGUF metadata value type names and their ids. */
export const GGUF_VALUE_TYPE = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
} as const;
/** A GGUF metadata value type name. */
export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPE, 'array'>;
/** One metadata entry: `type` is a scalar type, or `array` with `elementType` (nested arrays give a chain). */
export interface GgufMetadataEntry {
  readonly key: string;
  readonly type: keyof typeof GGUF_VALUE_TYPE;
  /** For arrays: element types down the nesting (e.g. ['string'] or ['array', 'u32']). */
  readonly elementType?: readonly (keyof typeof GGUF_VALUE_TYPE)[];
  readonly value: GgufValue;
}
/** Tensor types the writer emits, with their GGML ids, block bytes and block values (from {@link GGML_TYPES}). */
export const GGUF_TENSOR_TYPE: Readonly<Record<GgmlTypeName, { readonly id: number; readonly bytes: number; readonly values: number }>> = Object.freeze(
  Object.fromEntries(Object.values(GGML_TYPES).map((t) => [t.name, { id: t.id, bytes: t.blockBytes, values: t.blockValues }])) as Record<GgmlTypeName, { id: number; bytes: number; values: number }>,
);
/** One tensor to write: shape in GGUF order (ne0, innermost, first); data already in `type`. */
export interface GgufTensorInput {
  readonly name: string;
  readonly type: keyof typeof GGUF_TENSOR_TYPE;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}
/** What {@link encodeGguf} / {@link writeGguf} take. */
export interface GgufWriteInput {
  readonly metadata: readonly GgufMetadataEntry[];
  readonly tensors: readonly GgufTensorInput[];
  /** Defaults to the `general.alignment` entry, else 32. */
  readonly alignment?: number;
}

const te = new TextEncoder();

class Sink {
  parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array): void { this.parts.push(b); this.length += b.byteLength; }
  num(size: number, set: (dv: DataView) => void): void {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    this.push(b);
  }
  u32(v: number): void { this.num(4, (d) => d.setUint32(0, v, true)); }
  u64(v: number | bigint): void { this.num(8, (d) => d.setBigUint64(0, BigInt(v), true)); }
  str(s: string): void { const b = te.encode(s); this.u64(b.byteLength); this.push(b); }
}

function writeValue(sink: Sink, fn: string, key: string, type: string, chain: readonly string[], v: GgufValue): void {
  const bad = (): never => { throw new TypeError(`${fn}: metadata "${key}" value ${String(v)} is not a valid ${type}`); };
  const int = (lo: number, hi: number): number => (typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi ? v : bad());
  switch (type) {
    case 'u8': { const x = int(0, 255); sink.num(1, (d) => d.setUint8(0, x)); return; }
    case 'i8': { const x = int(-128, 127); sink.num(1, (d) => d.setInt8(0, x)); return; }
    case 'u16': { const x = int(0, 65535); sink.num(2, (d) => d.setUint16(0, x, true)); return; }
    case 'i16': { const x = int(-32768, 32767); sink.num(2, (d) => d.setInt16(0, x, true)); return; }
    case 'u32': { const x = int(0, 2 ** 32 - 1); sink.num(4, (d) => d.setUint32(0, x, true)); return; }
    case 'i32': { const x = int(-(2 ** 31), 2 ** 31 - 1); sink.num(4, (d) => d.setInt32(0, x, true)); return; }
    case 'f32': { const x = typeof v === 'number' ? v : bad(); sink.num(4, (d) => d.setFloat32(0, x, true)); return; }
    case 'f64': { const x = typeof v === 'number' ? v : bad(); sink.num(8, (d) => d.setFloat64(0, x, true)); return; }
    case 'bool': { const x = typeof v === 'boolean' ? v : bad(); sink.num(1, (d) => d.setUint8(0, x ? 1 : 0)); return; }
    case 'u64': case 'i64': {
      const x = typeof v === 'bigint' || (typeof v === 'number' && Number.isSafeInteger(v)) ? BigInt(v) : bad();
      if (type === 'u64' ? x < 0n || x >= 1n << 64n : x < -(1n << 63n) || x >= 1n << 63n) bad();
      sink.num(8, (d) => (type === 'u64' ? d.setBigUint64(0, x, true) : d.setBigInt64(0, x, true)));
      return;
    }
    case 'string': { if (typeof v !== 'string') bad(); sink.str(v as string); return; }
    case 'array': {
      if (!Array.isArray(v)) bad();
      const [et, ...rest] = chain;
      if (!et || !(et in GGUF_VALUE_TYPE)) throw new TypeError(`${fn}: metadata "${key}" is an array without a valid elementType`);
      sink.u32(GGUF_VALUE_TYPE[et as keyof typeof GGUF_VALUE_TYPE]);
      sink.u64((v as GgufValue[]).length);
      for (const e of v as GgufValue[]) writeValue(sink, fn, key, et, rest, e);
      return;
    }
    default: throw new TypeError(`${fn}: metadata "${key}" has unknown type ${type}`);
  }
}

const pad = (n: number, a: number): number => (a - (n % a)) % a;

/** Header, metadata and tensor infos plus padding; validates everything; returns per-tensor padded sizes. */
function encodeHead(input: GgufWriteInput, fn: string): { head: Uint8Array[]; alignment: number } {
  const fromMeta = input.metadata.find((m) => m.key === 'general.alignment')?.value;
  const alignment = input.alignment ?? (typeof fromMeta === 'number' ? fromMeta : 32);
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) throw new RangeError(`${fn}: alignment ${alignment} is not a power of two`);
  if (fromMeta !== undefined && fromMeta !== alignment) throw new RangeError(`${fn}: alignment ${alignment} disagrees with general.alignment ${String(fromMeta)}`);
  const sink = new Sink();
  sink.push(te.encode('GGUF'));
  sink.u32(3);
  sink.u64(input.tensors.length);
  sink.u64(input.metadata.length);
  const keys = new Set<string>();
  for (const m of input.metadata) {
    if (keys.has(m.key)) throw new TypeError(`${fn}: metadata key "${m.key}" appears twice`);
    keys.add(m.key);
    if (!(m.type in GGUF_VALUE_TYPE)) throw new TypeError(`${fn}: metadata "${m.key}" has unknown type ${m.type}`);
    sink.str(m.key);
    sink.u32(GGUF_VALUE_TYPE[m.type]);
    writeValue(sink, fn, m.key, m.type, m.elementType ?? [], m.value);
  }
  const names = new Set<string>();
  let offset = 0;
  for (const t of input.tensors) {
    if (names.has(t.name)) throw new TypeError(`${fn}: tensor "${t.name}" appears twice`);
    names.add(t.name);
    if (te.encode(t.name).byteLength > 63) throw new RangeError(`${fn}: tensor name "${t.name}" is longer than 63 bytes (GGML_MAX_NAME)`);
    const l = GGUF_TENSOR_TYPE[t.type];
    if (!l) throw new TypeError(`${fn}: tensor "${t.name}" has unsupported type ${String(t.type)}`);
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !Number.isSafeInteger(d) || d < 1)) throw new RangeError(`${fn}: tensor "${t.name}" shape [${t.shape.join(', ')}] is not 1 to 4 positive integers`);
    if (t.shape[0] % l.values !== 0) throw new RangeError(`${fn}: ${t.type} tensor "${t.name}" row length ${t.shape[0]} is not a multiple of ${l.values}`);
    const size = (t.shape.reduce((a, b) => a * b, 1) / l.values) * l.bytes;
    if (size !== t.data.byteLength) throw new RangeError(`${fn}: tensor "${t.name}" shape [${t.shape.join(', ')}] needs ${size} bytes of ${t.type} but data has ${t.data.byteLength}`);
    sink.str(t.name);
    sink.u32(t.shape.length);
    for (const d of t.shape) sink.u64(d);
    sink.u32(l.id);
    sink.u64(offset);
    offset += size + pad(size, alignment);
  }
  sink.push(new Uint8Array(pad(sink.length, alignment)));
  return { head: sink.parts, alignment };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.byteLength; }
  return out;
}

/** Encode a GGUF v3 file in memory. Throws TypeError/RangeError naming the bad argument. */
export function encodeGguf(input: GgufWriteInput): Uint8Array {
  const { head, alignment } = encodeHead(input, 'encodeGguf');
  const parts = [...head];
  for (const t of input.tensors) { parts.push(t.data); parts.push(new Uint8Array(pad(t.data.byteLength, alignment))); }
  return concat(parts);
}

/** Write a GGUF v3 file to `path`, tensor by tensor (the whole file is never in memory at once). */
export function writeGguf(path: string, input: GgufWriteInput): void {
  const { head, alignment } = encodeHead(input, 'writeGguf');
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, concat(head));
    for (const t of input.tensors) {
      writeSync(fd, t.data);
      const p = pad(t.data.byteLength, alignment);
      if (p) writeSync(fd, new Uint8Array(p));
    }
  } finally { closeSync(fd); }
}

/**
 * Tensor bytes of `x` as GGML type `typeName` (e.g. 'Q4_K'), ready for a {@link GgufTensorInput}:
 * see {@link ggmlEncode} (and its `fast` option). Throws RangeError unless x is a whole number of the type's blocks.
 */
export function ggmlBytes(typeName: GgmlTypeName, x: Float32Array, options: GgmlEncodeOptions = {}): Uint8Array {
  if (!Object.prototype.hasOwnProperty.call(GGUF_TENSOR_TYPE, typeName)) throw new TypeError(`ggmlBytes: typeName ${String(typeName)} is not one of ${Object.keys(GGUF_TENSOR_TYPE).join(', ')}`);
  return ggmlEncode(typeName, x, options);
}
/** F32 tensor bytes (little-endian) from values. */
export function f32Bytes(x: Float32Array): Uint8Array {
  return ggmlEncode('F32', x);
}
/** F16 tensor bytes from values (round to nearest). */
export function f16Bytes(x: Float32Array): Uint8Array {
  return ggmlEncode('F16', x);
}
/** BF16 tensor bytes from values (round to nearest even, NaN kept quiet), as ggml does. */
export function bf16Bytes(x: Float32Array): Uint8Array {
  return ggmlEncode('BF16', x);
}
/** Q8_0 tensor bytes as ggml quantizes: blocks of 32, d = max|x|/127 stored as f16, q = round(x/d). */
export function q8_0Bytes(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new RangeError(`q8_0Bytes: x has ${x.length} values, not a multiple of 32`);
  return ggmlEncode('Q8_0', x);
}
