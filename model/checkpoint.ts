/**
 * Reader for llama2.c checkpoints in the "legacy" (version 0) format: seven int32 header
 * fields followed by float32 arrays. See ../shared/models/stories260K/SOURCE.md.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { headSize, kvDim, validateConfig, type LlamaConfig } from './config.js';
import type { LayerWeights, LlamaWeights } from './weights.js';

/** A loaded base model: its weights and the SHA-256 of the file it came from. */
export interface LoadedBase {
  readonly weights: LlamaWeights;
  /** Hex SHA-256 of the checkpoint bytes: the base's identity for adapters and blobs. */
  readonly sha256: string;
  /** Where it was read from (informational). */
  readonly source: string;
}

/** Error thrown when a model or tokenizer file is malformed. */
export class ModelFormatError extends Error {
  override name = 'ModelFormatError';
}

/** Open a model file for reading; a missing or unreadable file is a ModelFormatError naming it. */
export function openModelFile(path: string): number {
  if (typeof path !== 'string' || path === '') throw new TypeError('base path must be a non-empty string');
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new ModelFormatError(`cannot read base model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The config in a llama2.c checkpoint's header (its size checked against the file's). */
export function readCheckpointConfig(path: string): LlamaConfig {
  const fd = openModelFile(path);
  try {
    const header = new Uint8Array(CHECKPOINT_DATA_OFFSET);
    readSync(fd, header, 0, header.length, 0);
    return checkpointLayout(header, fstatSync(fd).size, path).config;
  } finally {
    closeSync(fd);
  }
}

const HEADER_BYTES = 7 * 4;
const VERSIONED_MAGIC = 0x616b3432; // "ak42"

/** Read a llama2.c legacy checkpoint from a file path (one copy of the file in memory). */
export function readLlama2cCheckpoint(path: string): LoadedBase {
  if (typeof path !== 'string' || path === '') throw new TypeError('readLlama2cCheckpoint: path must be a non-empty string');
  let bytes: Uint8Array;
  try {
    const fd = openSync(path, 'r');
    try {
      // read into a fresh ArrayBuffer so the float arrays can be zero-copy views of it
      bytes = new Uint8Array(fstatSync(fd).size);
      let off = 0;
      while (off < bytes.length) {
        const n = readSync(fd, bytes, off, bytes.length - off, off);
        if (n <= 0) break;
        off += n;
      }
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new ModelFormatError(`cannot read base model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseLlama2cCheckpoint(bytes, path);
}

/** One array of the checkpoint, in file order. */
export interface CheckpointSegment {
  /** 'token_embedding', 'rms_att', 'wq', …, 'rms_final', 'rope', 'classifier' */
  readonly name: string;
  /** Float count of the whole segment (all layers for per-layer arrays). */
  readonly floats: number;
  /** Layers the segment is split into (1 for global arrays). */
  readonly parts: number;
}

/** The header's config and the file's layout; throws ModelFormatError on a bad header or size. */
export function checkpointLayout(header: Uint8Array, fileBytes: number, source: string): { config: LlamaConfig; segments: CheckpointSegment[] } {
  if (header.byteLength < HEADER_BYTES || fileBytes < HEADER_BYTES) throw new ModelFormatError(`${source} is too small (${fileBytes} bytes) to be a llama2.c checkpoint`);
  const dv = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  const h = (i: number): number => dv.getInt32(i * 4, true);
  if (dv.getUint32(0, true) === VERSIONED_MAGIC) {
    throw new ModelFormatError(`${source} is a versioned llama2.c export (magic "ak42", version ${h(1)}); only the legacy fp32 format is supported`);
  }
  const vocabRaw = h(5);
  let config: LlamaConfig;
  try {
    config = validateConfig(
      {
        dim: h(0),
        hiddenDim: h(1),
        nLayers: h(2),
        nHeads: h(3),
        nKvHeads: h(4),
        vocabSize: Math.abs(vocabRaw),
        seqLen: h(6),
        sharedClassifier: vocabRaw > 0,
        normEps: 1e-5,
        ropeTheta: 10000,
      },
      `${source} header`,
    );
  } catch (e) {
    throw new ModelFormatError(`${source} is not a llama2.c checkpoint: ${(e as Error).message}`);
  }
  const { dim, hiddenDim: hid, nLayers: L, vocabSize: V, seqLen } = config;
  const kv = kvDim(config);
  const seg = (name: string, floats: number, parts = 1): CheckpointSegment => ({ name, floats, parts });
  const segments = [
    seg('token_embedding', V * dim),
    seg('rms_att', L * dim, L),
    seg('wq', L * dim * dim, L),
    seg('wk', L * kv * dim, L),
    seg('wv', L * kv * dim, L),
    seg('wo', L * dim * dim, L),
    seg('rms_ffn', L * dim, L),
    seg('w1', L * hid * dim, L),
    seg('w2', L * dim * hid, L),
    seg('w3', L * hid * dim, L),
    seg('rms_final', dim),
    seg('rope', seqLen * headSize(config)),
  ];
  if (!config.sharedClassifier) segments.push(seg('classifier', V * dim));
  const expected = HEADER_BYTES + 4 * segments.reduce((a, x) => a + x.floats, 0);
  if (fileBytes !== expected) {
    throw new ModelFormatError(
      `${source} has ${fileBytes} bytes but its header (dim ${dim}, layers ${L}, vocab ${V}) implies ${expected}: truncated or not a llama2.c checkpoint`,
    );
  }
  return { config, segments };
}

/** Byte offset of the float data in a legacy checkpoint. */
export const CHECKPOINT_DATA_OFFSET = 7 * 4;

/** Assemble LlamaWeights from per-segment arrays (per-layer segments already split). */
export function assembleWeights(config: LlamaConfig, arrays: ReadonlyMap<string, Float32Array[]>): LlamaWeights {
  const get = (n: string): Float32Array[] => {
    const a = arrays.get(n);
    if (!a) throw new ModelFormatError(`checkpoint is missing ${n}`);
    return a;
  };
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, (_, l) => ({
    rmsAtt: get('rms_att')[l],
    rmsFfn: get('rms_ffn')[l],
    wq: get('wq')[l],
    wk: get('wk')[l],
    wv: get('wv')[l],
    wo: get('wo')[l],
    w1: get('w1')[l],
    w2: get('w2')[l],
    w3: get('w3')[l],
  }));
  const tokenEmbedding = get('token_embedding')[0];
  const classifier = config.sharedClassifier ? tokenEmbedding : get('classifier')[0];
  return { config, tokenEmbedding, layers, rmsFinal: get('rms_final')[0], classifier };
}

/** Parse llama2.c legacy checkpoint bytes (zero-copy when the floats are 4-byte aligned). */
export function parseLlama2cCheckpoint(bytes: Uint8Array, source = '<buffer>'): LoadedBase {
  const { config, segments } = checkpointLayout(bytes.subarray(0, HEADER_BYTES), bytes.byteLength, source);
  const floats = (bytes.byteLength - HEADER_BYTES) / 4;
  let all: Float32Array;
  if ((bytes.byteOffset + HEADER_BYTES) % 4 === 0) all = new Float32Array(bytes.buffer, bytes.byteOffset + HEADER_BYTES, floats);
  else {
    all = new Float32Array(floats);
    new Uint8Array(all.buffer).set(bytes.subarray(HEADER_BYTES));
  }
  const arrays = new Map<string, Float32Array[]>();
  let off = 0;
  for (const sg of segments) {
    const each = sg.floats / sg.parts;
    arrays.set(sg.name, Array.from({ length: sg.parts }, (_, l) => all.subarray(off + l * each, off + (l + 1) * each)));
    off += sg.floats;
  }
  const weights = assembleWeights(config, arrays);
  for (const [name, arr] of [['token_embedding', weights.tokenEmbedding], ['rms_final', weights.rmsFinal]] as const) {
    if (!arr.every(Number.isFinite)) throw new ModelFormatError(`${source}: ${name} holds non-finite values`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { weights, sha256, source };
}

/** Serialize weights back to the llama2.c legacy format (RoPE tables written as zeros). */
export function encodeLlama2cCheckpoint(w: LlamaWeights): Uint8Array {
  const c = w.config;
  const ropeFloats = c.seqLen * (headSize(c) / 2);
  const parts: Float32Array[] = [
    w.tokenEmbedding,
    ...w.layers.map((l) => l.rmsAtt),
    ...w.layers.map((l) => l.wq),
    ...w.layers.map((l) => l.wk),
    ...w.layers.map((l) => l.wv),
    ...w.layers.map((l) => l.wo),
    ...w.layers.map((l) => l.rmsFfn),
    ...w.layers.map((l) => l.w1),
    ...w.layers.map((l) => l.w2),
    ...w.layers.map((l) => l.w3),
    w.rmsFinal,
    new Float32Array(2 * ropeFloats),
  ];
  if (!c.sharedClassifier) parts.push(w.classifier);
  const floats = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(HEADER_BYTES + floats * 4);
  const dv = new DataView(out.buffer);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.sharedClassifier ? c.vocabSize : -c.vocabSize, c.seqLen].forEach((v, i) =>
    dv.setInt32(i * 4, v, true),
  );
  let off = HEADER_BYTES;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), off);
    off += p.byteLength;
  }
  return out;
}
