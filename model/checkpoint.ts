/**
 * Reader for llama2.c checkpoints in the "legacy" (version 0) format: seven int32 header
 * fields followed by float32 arrays. See ../shared/models/stories260K/SOURCE.md.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
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

const HEADER_BYTES = 7 * 4;
const VERSIONED_MAGIC = 0x616b3432; // "ak42"

/** Read a llama2.c legacy checkpoint from a file path. */
export function readLlama2cCheckpoint(path: string): LoadedBase {
  if (typeof path !== 'string' || path === '') throw new TypeError('readLlama2cCheckpoint: path must be a non-empty string');
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new ModelFormatError(`cannot read base model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseLlama2cCheckpoint(bytes, path);
}

/** Parse llama2.c legacy checkpoint bytes. */
export function parseLlama2cCheckpoint(bytes: Uint8Array, source = '<buffer>'): LoadedBase {
  if (bytes.byteLength < HEADER_BYTES) throw new ModelFormatError(`${source} is too small (${bytes.byteLength} bytes) to be a llama2.c checkpoint`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
  const ropeFloats = seqLen * (headSize(config) / 2);
  const sizes = {
    emb: V * dim,
    rmsAtt: L * dim,
    wq: L * dim * dim,
    wk: L * kv * dim,
    wv: L * kv * dim,
    wo: L * dim * dim,
    rmsFfn: L * dim,
    w1: L * hid * dim,
    w2: L * dim * hid,
    w3: L * hid * dim,
    rmsFinal: dim,
    rope: 2 * ropeFloats,
    cls: config.sharedClassifier ? 0 : V * dim,
  };
  const floats = Object.values(sizes).reduce((a, b) => a + b, 0);
  const expected = HEADER_BYTES + floats * 4;
  if (bytes.byteLength !== expected) {
    throw new ModelFormatError(
      `${source} has ${bytes.byteLength} bytes but its header (dim ${dim}, layers ${L}, vocab ${V}) implies ${expected}: truncated or not a llama2.c checkpoint`,
    );
  }
  // copy once into an aligned buffer so every array is a zero-copy view
  const all = new Float32Array(floats);
  new Uint8Array(all.buffer).set(bytes.subarray(HEADER_BYTES));
  let off = 0;
  const take = (n: number): Float32Array => {
    const v = all.subarray(off, off + n);
    off += n;
    return v;
  };
  const perLayer = (n: number): Float32Array[] => {
    const block = take(n);
    const each = n / L;
    return Array.from({ length: L }, (_, l) => block.subarray(l * each, (l + 1) * each));
  };
  const tokenEmbedding = take(sizes.emb);
  const rmsAtt = perLayer(sizes.rmsAtt);
  const wq = perLayer(sizes.wq);
  const wk = perLayer(sizes.wk);
  const wv = perLayer(sizes.wv);
  const wo = perLayer(sizes.wo);
  const rmsFfn = perLayer(sizes.rmsFfn);
  const w1 = perLayer(sizes.w1);
  const w2 = perLayer(sizes.w2);
  const w3 = perLayer(sizes.w3);
  const rmsFinal = take(sizes.rmsFinal);
  take(sizes.rope);
  const classifier = config.sharedClassifier ? tokenEmbedding : take(sizes.cls);
  for (const [name, arr] of [['token_embedding', tokenEmbedding], ['rms_final', rmsFinal]] as const) {
    if (!arr.every(Number.isFinite)) throw new ModelFormatError(`${source}: ${name} holds non-finite values`);
  }
  const layers: LayerWeights[] = Array.from({ length: L }, (_, l) => ({
    rmsAtt: rmsAtt[l],
    rmsFfn: rmsFfn[l],
    wq: wq[l],
    wk: wk[l],
    wv: wv[l],
    wo: wo[l],
    w1: w1[l],
    w2: w2[l],
    w3: w3[l],
  }));
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { weights: { config, tokenEmbedding, layers, rmsFinal, classifier }, sha256, source };
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
