/**
 * Reader for GGUF files (llama.cpp's model format, versions 2 and 3, little-endian): metadata,
 * tensor directory, F32/F16/Q8_0/Q4_0 tensor data, and conversion of a `llama` model to a
 * {@link LoadedBase}; the tokenizer in its metadata is read by gguf-tokenizer.ts. See
 * ../shared/models/stories260K/SOURCE.md.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ModelFormatError, type LoadedBase } from './checkpoint.js';
import { kvDim, validateConfig, type LlamaConfig } from './config.js';
import { fromHalf } from './fp16.js';
import type { QuantizedArray } from './quant.js';
import type { LayerWeights } from './weights.js';

/** A GGUF metadata value: integers of 64 bits are bigints, arrays may nest. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** GGML tensor types this reader can decode (others are listed but not readable). */
export const GGML_TYPE = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 } as const;

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
  readonly bytes: Uint8Array;
  readonly source: string;
}

const QK = 32; // values per Q8_0 / Q4_0 block
/** Bytes per block and values per block of the decodable types. */
const LAYOUT: Record<number, { bytes: number; values: number; name: string }> = {
  0: { bytes: 4, values: 1, name: 'F32' },
  1: { bytes: 2, values: 1, name: 'F16' },
  2: { bytes: 2 + QK / 2, values: QK, name: 'Q4_0' },
  8: { bytes: 2 + QK, values: QK, name: 'Q8_0' },
};
// minimal encoded size of one value of each metadata type (for validating array counts)
const MIN_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const MAX_DEPTH = 8;

/** Parse GGUF bytes (v2/v3); every count and offset is checked against the file's size. */
export function parseGguf(bytes: Uint8Array, source = '<buffer>'): GgufFile {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  const bad = (why: string): never => {
    throw new ModelFormatError(`${source} is not a readable GGUF file: ${why}`);
  };
  let off = 0;
  const need = (k: number, what: string): void => {
    if (off + k > n) bad(`truncated while reading ${what} at byte ${off}`);
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
  return { version, metadata, metadataTypes, tensors, dataOffset, alignment: alignment as number, bytes, source };
}

/** Number of values of a tensor. */
function valueCount(t: GgufTensorInfo): number {
  return t.dims.reduce((a, b) => a * b, 1);
}

/** Byte size of a tensor's data, or undefined for types this reader does not decode. */
function tensorBytes(t: GgufTensorInfo, source: string): number | undefined {
  const l = LAYOUT[t.type];
  if (!l) return undefined;
  const count = valueCount(t);
  if (!Number.isSafeInteger(count * l.bytes)) throw new ModelFormatError(`${source}: tensor "${t.name}" has absurd dimensions [${t.dims.join(', ')}]`);
  if (t.dims[0] % l.values !== 0) throw new ModelFormatError(`${source}: ${l.name} tensor "${t.name}" has a row length ${t.dims[0]} that is not a multiple of ${l.values}`);
  return (count / l.values) * l.bytes;
}

function tensorView(file: GgufFile, info: GgufTensorInfo): { dv: DataView; start: number; count: number } {
  if (!LAYOUT[info.type]) throw new ModelFormatError(`${file.source}: tensor "${info.name}" has GGML type ${info.type}, which is not supported (F32, F16, Q8_0 and Q4_0 are)`);
  const size = tensorBytes(info, file.source) as number;
  const start = file.dataOffset + info.offset;
  if (start + size > file.bytes.byteLength) throw new ModelFormatError(`${file.source}: the data of tensor "${info.name}" runs past the end of the file`);
  return { dv: new DataView(file.bytes.buffer, file.bytes.byteOffset, file.bytes.byteLength), start, count: valueCount(info) };
}

/** A tensor's values as float32 (F32 copied, F16 widened, Q8_0 and Q4_0 dequantized). */
export function ggufTensorF32(file: GgufFile, info: GgufTensorInfo): Float32Array {
  const { dv, start, count } = tensorView(file, info);
  const out = new Float32Array(count);
  if (info.type === GGML_TYPE.F32) {
    new Uint8Array(out.buffer).set(file.bytes.subarray(start, start + count * 4));
  } else if (info.type === GGML_TYPE.F16) {
    for (let i = 0; i < count; i++) out[i] = fromHalf(dv.getUint16(start + 2 * i, true));
  } else {
    const q8 = info.type === GGML_TYPE.Q8_0;
    const bb = LAYOUT[info.type].bytes;
    for (let b = 0; b < count / QK; b++) {
      const p = start + b * bb;
      const d = fromHalf(dv.getUint16(p, true));
      for (let j = 0; j < QK / 2 && !q8; j++) {
        const byte = dv.getUint8(p + 2 + j);
        out[b * QK + j] = ((byte & 0x0f) - 8) * d;
        out[b * QK + j + QK / 2] = ((byte >>> 4) - 8) * d;
      }
      for (let j = 0; j < QK && q8; j++) out[b * QK + j] = dv.getInt8(p + 2 + j) * d;
    }
  }
  return out;
}

/** A Q8_0 or Q4_0 tensor as a fedtune {@link QuantizedArray} (block 32), without dequantizing. */
export function ggufTensorQuantized(file: GgufFile, info: GgufTensorInfo): QuantizedArray {
  const q8 = info.type === GGML_TYPE.Q8_0;
  if (!q8 && info.type !== GGML_TYPE.Q4_0) throw new ModelFormatError(`${file.source}: tensor "${info.name}" is ${LAYOUT[info.type]?.name ?? `GGML type ${info.type}`}, not Q8_0 or Q4_0`);
  const { dv, start, count } = tensorView(file, info);
  const nb = count / QK;
  const per = q8 ? QK : QK / 2;
  const data = q8 ? new Int8Array(count) : new Uint8Array(nb * per);
  const raw = new Uint8Array(data.buffer);
  const scales = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    const p = start + b * (2 + per);
    scales[b] = dv.getUint16(p, true);
    raw.set(file.bytes.subarray(p + 2, p + 2 + per), b * per);
  }
  return { kind: q8 ? 'q8_0' : 'q4_0', length: count, block: QK, data, scales };
}

/** Read a GGUF file and convert its llama model to a {@link LoadedBase}. */
export function readGgufBase(path: string): LoadedBase {
  if (typeof path !== 'string' || path === '') throw new TypeError('readGgufBase: path must be a non-empty string');
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ModelFormatError(`cannot read base model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return ggufToBase(bytes, path);
}

/** The shortest decimal that rounds to the same float32 (so a stored 1e-5 reads back as 1e-5). */
function shortF32(x: number): number {
  for (let p = 1; p < 17; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/**
 * Convert GGUF bytes (or an already parsed file) holding `general.architecture = llama` to a
 * {@link LoadedBase}. Tensors are taken as stored (no RoPE un-permutation); `output` shares the
 * embedding array when absent or bit-identical to `token_embd`. sha256 is that of the file bytes.
 */
export function ggufToBase(bytes: Uint8Array | GgufFile, source = '<buffer>'): LoadedBase {
  const file = bytes instanceof Uint8Array ? parseGguf(bytes, source) : bytes;
  const src = file.source;
  const m = file.metadata;
  const arch = m.get('general.architecture');
  if (arch !== 'llama') throw new ModelFormatError(`${src} holds architecture "${String(arch ?? 'none')}"; only llama models are supported`);
  const num = (key: string, dflt?: number): number => {
    const v = m.get(key) ?? dflt;
    if (v === undefined) throw new ModelFormatError(`${src} lacks the metadata key ${key}`);
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new ModelFormatError(`${src}: metadata ${key} is not a number`);
    return Number(v);
  };
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const find = (name: string): GgufTensorInfo | undefined => byName.get(`${name}.weight`) ?? byName.get(name);
  const emb = find('token_embd');
  if (!emb) throw new ModelFormatError(`${src} lacks the tensor token_embd.weight`);
  const heads = num('llama.attention.head_count');
  let config: LlamaConfig;
  try {
    config = validateConfig(
      {
        dim: num('llama.embedding_length'),
        hiddenDim: num('llama.feed_forward_length'),
        nLayers: num('llama.block_count'),
        nHeads: heads,
        nKvHeads: num('llama.attention.head_count_kv', heads),
        vocabSize: emb.dims[1] ?? 0,
        seqLen: num('llama.context_length'),
        sharedClassifier: true,
        normEps: shortF32(num('llama.attention.layer_norm_rms_epsilon', 1e-5)),
        ropeTheta: shortF32(num('llama.rope.freq_base', 10000)),
      },
      `${src} metadata`,
    );
  } catch (e) {
    throw e instanceof ModelFormatError ? e : new ModelFormatError(`${src} has an inconsistent llama config: ${(e as Error).message}`);
  }
  const { dim, hiddenDim: hid, vocabSize: V } = config;
  const kv = kvDim(config);
  const tensor = (name: string, shape: number[]): Float32Array => {
    const t = find(name);
    if (!t) throw new ModelFormatError(`${src} lacks the tensor ${name}.weight`);
    if (t.dims.length !== shape.length || t.dims.some((d, i) => d !== shape[i])) {
      throw new ModelFormatError(`${src}: tensor ${t.name} has dims [${t.dims.join(', ')}] but the config implies [${shape.join(', ')}]`);
    }
    return ggufTensorF32(file, t);
  };
  const tokenEmbedding = tensor('token_embd', [dim, V]);
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, (_, l) => ({
    rmsAtt: tensor(`blk.${l}.attn_norm`, [dim]),
    rmsFfn: tensor(`blk.${l}.ffn_norm`, [dim]),
    wq: tensor(`blk.${l}.attn_q`, [dim, dim]),
    wk: tensor(`blk.${l}.attn_k`, [dim, kv]),
    wv: tensor(`blk.${l}.attn_v`, [dim, kv]),
    wo: tensor(`blk.${l}.attn_output`, [dim, dim]),
    w1: tensor(`blk.${l}.ffn_gate`, [dim, hid]),
    w2: tensor(`blk.${l}.ffn_down`, [hid, dim]),
    w3: tensor(`blk.${l}.ffn_up`, [dim, hid]),
  }));
  const rmsFinal = tensor('output_norm', [dim]);
  let classifier = find('output') ? tensor('output', [dim, V]) : tokenEmbedding;
  const same = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  if (same(classifier, tokenEmbedding)) classifier = tokenEmbedding;
  else config = { ...config, sharedClassifier: false };
  const sha256 = createHash('sha256').update(file.bytes).digest('hex');
  return { weights: { config, tokenEmbedding, layers, rmsFinal, classifier }, sha256, source: src };
}
