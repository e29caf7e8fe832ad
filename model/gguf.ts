/**
 * Reader for GGUF files (llama.cpp's model format, versions 2 and 3, little-endian): metadata,
 * tensor directory, F32/F16/Q8_0/Q4_0 tensor data, and conversion of a `llama` model to a
 * {@link LoadedBase}; the tokenizer in its metadata is read by gguf-tokenizer.ts. See
 * ../shared/models/stories260K/SOURCE.md.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { ModelFormatError, openModelFile } from './checkpoint.js';
import { ggmlDecode, ggmlFirstNonFinite, ggmlType } from './ggml-types.js';
import { nativeQuantized, type QuantizedArray } from './quant.js';

/** A GGUF metadata value: integers of 64 bits are bigints, arrays may nest. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** GGML tensor types this reader can decode (others are listed but not readable). */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14, BF16: 30 } as const;

/** One entry of a GGUF file's tensor directory. */
export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions as listed in the file: innermost (contiguous) first. */
  readonly dims: readonly number[];
  /** GGML type id (see {@link GGML_TYPE}). */
  readonly type: number;
  /** Byte offset of the data relative to {@link GgufFile.dataOffset}. */
  readonly offset: number;
}

/** A parsed GGUF file; tensor data stays in `bytes` until read. */
export interface GgufFile {
  readonly version: number;
  readonly metadata: Map<string, GgufValue>;
  /** Each metadata key's GGUF value type, then (for arrays) the element types down the nesting; in file order. */
  readonly metadataTypes?: Map<string, number[]>;
  readonly tensors: GgufTensorInfo[];
  /** Absolute byte offset of the tensor data section. */
  readonly dataOffset: number;
  readonly alignment: number;
  /** The whole file, or (from {@link openGgufFile}) its header; tensor data then comes from `fd`. */
  readonly bytes: Uint8Array;
  readonly source: string;
  /** Size of the file in bytes (default bytes.byteLength). */
  readonly fileSize?: number;
  /** An open file descriptor to read tensor data from when `bytes` holds only the header. */
  readonly fd?: number;
}

// minimal encoded size of one value of each metadata type (for validating array counts)
const MIN_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const MAX_DEPTH = 8;

/** Thrown inside parseGguf when a header prefix ends before the header does. */
class NeedMoreBytes extends Error {}

/**
 * Parse GGUF bytes (v2/v3); every count and offset is checked against the file's size.
 * `fileSize` (default: all of `bytes`) lets `bytes` be a prefix holding just the header.
 */
export function parseGguf(bytes: Uint8Array, source = '<buffer>', fileSize = bytes.byteLength): GgufFile {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = fileSize;
  const bad = (why: string): never => {
    throw new ModelFormatError(`${source} is not a readable GGUF file: ${why}`);
  };
  let off = 0;
  const need = (k: number, what: string): void => {
    if (off + k > n) bad(`truncated while reading ${what} at byte ${off}`);
    if (off + k > bytes.byteLength) throw new NeedMoreBytes();
  };
  const u32 = (what: string): number => (need(4, what), (off += 4), dv.getUint32(off - 4, true));
  const u64 = (what: string): number => {
    need(8, what);
    const v = dv.getBigUint64(off, true);
    off += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} ${v} is too large`);
    return Number(v);
  };
  const count = (what: string, minSize: number): number => {
    const c = u64(what);
    if (c * minSize > n - off) bad(`${what} ${c} exceeds the ${n - off} bytes remaining`);
    return c;
  };
  const str = (what: string): string => {
    const len = count(`length of ${what}`, 1);
    need(len, what);
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + off, len).toString('utf8');
    off += len;
    return s;
  };
  let typeChain: number[] = [];
  const value = (type: number, what: string, depth: number): GgufValue => {
    const size = MIN_SIZE[type];
    if (size === undefined) bad(`${what} has unknown value type ${type}`);
    if (type === 8) return str(what);
    if (type === 9) {
      if (depth >= MAX_DEPTH) bad(`${what} nests arrays too deeply`);
      const et = u32(`element type of ${what}`);
      if (typeChain.length === depth + 1) typeChain.push(et);
      if (MIN_SIZE[et] === undefined) bad(`${what} has unknown element type ${et}`);
      const c = count(`element count of ${what}`, MIN_SIZE[et]);
      const arr: GgufValue[] = new Array(c);
      for (let i = 0; i < c; i++) arr[i] = value(et, what, depth + 1);
      return arr;
    }
    need(size, what);
    const at = off;
    off += size;
    switch (type) {
      case 0: return dv.getUint8(at);
      case 1: return dv.getInt8(at);
      case 2: return dv.getUint16(at, true);
      case 3: return dv.getInt16(at, true);
      case 4: return dv.getUint32(at, true);
      case 5: return dv.getInt32(at, true);
      case 6: return dv.getFloat32(at, true);
      case 7: return dv.getUint8(at) !== 0;
      case 10: return dv.getBigUint64(at, true);
      case 11: return dv.getBigInt64(at, true);
      default: return dv.getFloat64(at, true);
    }
  };

  if (n < 4 || bytes[0] !== 0x47 || bytes[1] !== 0x47 || bytes[2] !== 0x55 || bytes[3] !== 0x46) bad('it does not start with the magic "GGUF"');
  off = 4;
  const version = u32('version');
  if (version !== 2 && version !== 3) bad(`version ${version} is not supported (only 2 and 3)`);
  const tensorCount = count('tensor count', 8 + 4 + 8 + 4 + 8);
  const kvCount = count('metadata count', 8 + 4 + 1);
  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, number[]>();
  for (let i = 0; i < kvCount; i++) {
    const key = str(`metadata key ${i}`);
    if (metadata.has(key)) bad(`metadata key "${key}" appears twice`);
    const type = u32(`type of ${key}`);
    typeChain = [type];
    metadata.set(key, value(type, `metadata "${key}"`, 0));
    metadataTypes.set(key, typeChain);
  }
  const alignment = metadata.get('general.alignment') ?? 32;
  if (typeof alignment !== 'number' || !Number.isInteger(alignment) || alignment < 1 || alignment > 1 << 20 || (alignment & (alignment - 1)) !== 0) {
    bad(`general.alignment ${String(alignment)} is not a power of two`);
  }
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = str(`name of tensor ${i}`);
    if (names.has(name)) bad(`tensor "${name}" appears twice`);
    names.add(name);
    const nd = u32(`dimension count of ${name}`);
    if (nd < 1 || nd > 4) bad(`tensor "${name}" has ${nd} dimensions (1 to 4 allowed)`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(u64(`dimension ${d} of ${name}`));
    const type = u32(`type of ${name}`);
    const offset = u64(`offset of ${name}`);
    if (offset % (alignment as number) !== 0) bad(`tensor "${name}" offset ${offset} is not aligned to ${alignment}`);
    tensors.push({ name, dims, type, offset });
  }
  const dataOffset = Math.ceil(off / (alignment as number)) * (alignment as number);
  for (const t of tensors) {
    const size = tensorBytes(t, source);
    if (size !== undefined && dataOffset + t.offset + size > n) bad(`the data of tensor "${t.name}" runs past the end of the file (truncated?)`);
  }
  return { version, metadata, metadataTypes, tensors, dataOffset, alignment: alignment as number, bytes, source, fileSize: n };
}

/**
 * Open a GGUF file without reading its tensor data: the header is parsed from a prefix of the
 * file (grown until it holds the whole header) and the descriptor stays open for
 * {@link ggufTensorRaw}. Close it with {@link closeGgufFile}.
 */
export function openGgufFile(path: string): GgufFile {
  if (typeof path !== 'string' || path === '') throw new TypeError('openGgufFile: path must be a non-empty string');
  const fd = openModelFile(path);
  try {
    const size = fstatSync(fd).size;
    for (let want = Math.min(size, 1 << 20); ; want = Math.min(size, want * 4)) {
      const prefix = new Uint8Array(want);
      for (let got = 0; got < want; ) {
        const k = readSync(fd, prefix, got, want - got, got);
        if (k <= 0) throw new ModelFormatError(`${path} ended early at byte ${got}`);
        got += k;
      }
      try {
        return { ...parseGguf(prefix, path, size), fd };
      } catch (e) {
        if (!(e instanceof NeedMoreBytes) || want >= size) throw e;
      }
    }
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Close the descriptor of a file from {@link openGgufFile} (no-op for parsed buffers). */
export function closeGgufFile(file: GgufFile): void {
  if (file.fd !== undefined) closeSync(file.fd);
}

/** The raw bytes of a tensor's data (a view into `bytes`, or read from `fd`). */
export function ggufTensorRaw(file: GgufFile, info: GgufTensorInfo): Uint8Array {
  const size = tensorBytes(info, file.source);
  if (size === undefined) throw new ModelFormatError(`${file.source}: tensor "${info.name}" has GGML type ${info.type}, which is not supported`);
  const start = file.dataOffset + info.offset;
  if (start + size > (file.fileSize ?? file.bytes.byteLength)) throw new ModelFormatError(`${file.source}: the data of tensor "${info.name}" runs past the end of the file`);
  if (start + size <= file.bytes.byteLength) return file.bytes.subarray(start, start + size);
  if (file.fd === undefined) throw new ModelFormatError(`${file.source}: the data of tensor "${info.name}" runs past the end of the file`);
  const out = new Uint8Array(size);
  for (let got = 0; got < size; ) {
    const k = readSync(file.fd, out, got, size - got, start + got);
    if (k <= 0) throw new ModelFormatError(`${file.source} ended early inside tensor "${info.name}"`);
    got += k;
  }
  return out;
}

/** Number of values of a tensor. */
function valueCount(t: GgufTensorInfo): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

/** Byte size of a tensor's data, or undefined for types this reader does not decode. */
function tensorBytes(t: GgufTensorInfo, source: string): number | undefined {
  const l = ggmlType(t.type);
  if (!l) return undefined;
  const count = valueCount(t);
  if (!Number.isSafeInteger(count * l.blockBytes)) throw new ModelFormatError(`${source}: tensor "${t.name}" has absurd dimensions [${t.dims.join(', ')}]`);
  if (t.dims[0] % l.blockValues !== 0) throw new ModelFormatError(`${source}: ${l.name} tensor "${t.name}" has a row length ${t.dims[0]} that is not a multiple of ${l.blockValues}`);
  return (count / l.blockValues) * l.blockBytes;
}

function supported(file: GgufFile, info: GgufTensorInfo): void {
  if (!ggmlType(info.type)) throw new ModelFormatError(`${file.source}: tensor "${info.name}" has GGML type ${info.type}, which is not supported (${Object.keys(GGML_TYPE).join(', ')} are)`);
}

/** A tensor's raw data, refused (ModelFormatError) when a value or a block scale is NaN or infinite. */
function finiteRaw(file: GgufFile, info: GgufTensorInfo): Uint8Array {
  const raw = ggufTensorRaw(file, info);
  const t = ggmlType(info.type)!;
  const at = ggmlFirstNonFinite(t, raw, valueCount(info));
  if (at >= 0) throw new ModelFormatError(`${file.source}: tensor "${info.name}" (${t.name}) has a NaN or infinite ${t.blockValues === 1 ? `value at index ${at}` : `scale in block ${at}`}`);
  return raw;
}

/** A tensor's values as float32 (floats widened, quantized blocks dequantized as ggml does); NaN or infinite values or scales throw ModelFormatError. */
export function ggufTensorF32(file: GgufFile, info: GgufTensorInfo): Float32Array {
  supported(file, info);
  const count = valueCount(info);
  return ggmlDecode(info.type, finiteRaw(file, info), count, new Float32Array(count));
}

/** A quantized tensor (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) as a fedtune {@link QuantizedArray} holding the file's blocks; a NaN or infinite scale throws ModelFormatError. */
export function ggufTensorQuantized(file: GgufFile, info: GgufTensorInfo): QuantizedArray {
  supported(file, info);
  const t = ggmlType(info.type)!;
  if (t.blockValues === 1) throw new ModelFormatError(`${file.source}: tensor "${info.name}" is ${t.name}, not a block-quantized type`);
  return nativeQuantized(t, finiteRaw(file, info), valueCount(info));
}
