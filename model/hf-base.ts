/**
 * A Hugging Face checkpoint directory (config.json + safetensors, single or sharded) as a
 * fedtune base, for the llama, qwen2 and qwen3 families. Tensors are streamed shard by shard
 * in file order: each is read with readSync, widened to float32 (F32, F16, BF16), checked
 * against the config, permuted to GGUF layout when llama (q/k rows halves → pairs, as
 * llama.cpp's convert_hf_to_gguf.py), and at int8 / uncalibrated int4 quantized at once, so
 * the float32 model never sits in memory whole.
 *
 * Identity: see {@link hfIdentity} — the SHA-256 of a `sha256sum`-style listing of config.json,
 * the weights (model.safetensors, or the index and every shard it names), and tokenizer.json,
 * tokenizer_config.json and generation_config.json when present. The shards are hashed while
 * they are streamed, so each byte is read once.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { createBase, type CreateBaseOptions } from './calibrate.js';
import { ModelFormatError, type LoadedBase } from './checkpoint.js';
import { architectureOf, headSize, kvDim, qDim, type LlamaConfig } from './config.js';
import { fromHalf } from './fp16.js';
import { defaultHeadQuant, FrozenBase } from './frozen-base.js';
import { HF_NAMES, hfMatrixName, hfVectorName, layerVectors, permuteHalvesToPairs, type LayerVectorName } from './arch-names.js';
import { hfIdentity, readHfLayout, type HfLayout, type HfShard, type HfTensorEntry } from './hf-files.js';
import { quantize, QUANT_MODES, type QuantizedArray, type QuantMode } from './quant.js';
import { MATRIX_NAMES, matrixShape, type LayerWeights, type MatrixName } from './weights.js';

/** Where a needed tensor goes. */
type Slot = { kind: 'embedding' } | { kind: 'classifier' } | { kind: 'final' } | { kind: 'matrix'; layer: number; name: MatrixName } | { kind: 'vector'; layer: number; name: LayerVectorName } | { kind: 'zero' };

/** The tensors a config needs, with their expected shapes. */
function expectedTensors(c: LlamaConfig, layout: HfLayout): Map<string, { shape: number[]; slot: Slot }> {
  const m = new Map<string, { shape: number[]; slot: Slot }>();
  m.set(HF_NAMES.tokenEmbedding, { shape: [c.vocabSize, c.dim], slot: { kind: 'embedding' } });
  m.set(HF_NAMES.rmsFinal, { shape: [c.dim], slot: { kind: 'final' } });
  if (!c.sharedClassifier) m.set(HF_NAMES.classifier, { shape: [c.vocabSize, c.dim], slot: { kind: 'classifier' } });
  const vecShape: Record<LayerVectorName, number> = { rmsAtt: c.dim, rmsFfn: c.dim, bq: qDim(c), bk: kvDim(c), bv: kvDim(c), qNorm: headSize(c), kNorm: headSize(c) };
  for (let l = 0; l < c.nLayers; l++) {
    for (const name of MATRIX_NAMES) m.set(hfMatrixName(l, name), { shape: matrixShape(c, name), slot: { kind: 'matrix', layer: l, name } });
    for (const name of layerVectors(c)) m.set(hfVectorName(l, name), { shape: [vecShape[name]], slot: { kind: 'vector', layer: l, name } });
    // transformers puts a bias on o_proj too when attention_bias is set; fedtune has none, so it must be zero
    const oBias = `model.layers.${l}.self_attn.o_proj.bias`;
    if (c.attnBias && layout.tensors.has(oBias)) m.set(oBias, { shape: [c.dim], slot: { kind: 'zero' } });
  }
  return m;
}

/** Values of F32 / F16 / BF16 little-endian bytes as float32. */
function widen(bytes: Uint8Array, dtype: string): Float32Array {
  if (dtype === 'F32') return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const n = bytes.byteLength / 2;
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F16') for (let i = 0; i < n; i++) out[i] = fromHalf(dv.getUint16(2 * i, true));
  else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
  }
  return out;
}

/** Read one shard front to back, hashing every byte, handing each needed tensor's values to `take`. */
function streamShard(shard: HfShard, hash: Hash, needed: ReadonlySet<string>, take: (t: HfTensorEntry, values: Float32Array) => void): void {
  let fd: number;
  try {
    fd = openSync(shard.path, 'r');
  } catch (e) {
    throw new ModelFormatError(`cannot read ${shard.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    let pos = 0;
    const chunk = new Uint8Array(1 << 20);
    const read = (buf: Uint8Array): void => {
      for (let off = 0; off < buf.length; ) {
        const n = readSync(fd, buf, off, buf.length - off, pos + off);
        if (n <= 0) throw new ModelFormatError(`${shard.path} ended early at byte ${pos + off}`);
        off += n;
      }
      pos += buf.length;
      hash.update(buf);
    };
    const skipTo = (end: number): void => {
      while (pos < end) read(chunk.subarray(0, Math.min(chunk.length, end - pos)));
    };
    for (const t of shard.tensors) {
      skipTo(t.start);
      if (!needed.has(t.name)) {
        skipTo(t.end);
        continue;
      }
      // F32 is read straight into the float array's buffer (4-byte aligned)
      const bytes = t.dtype === 'F32' ? new Uint8Array(new Float32Array((t.end - t.start) / 4).buffer) : new Uint8Array(t.end - t.start);
      read(bytes);
      const values = widen(bytes, t.dtype);
      const at = values.findIndex((x) => !Number.isFinite(x));
      if (at >= 0) throw new ModelFormatError(`${shard.path}: tensor "${t.name}" (${t.dtype}) has a NaN or infinite value at index ${at}`);
      take(t, values);
    }
    skipTo(shard.size);
    if (readSync(fd, chunk, 0, 1, pos) > 0) throw new ModelFormatError(`${shard.path} grew while it was read`);
  } finally {
    closeSync(fd);
  }
}

interface StreamOptions {
  /** Quantize the block matrices (`quant`) and head / embedding (`headQuant`) as they arrive. */
  readonly quant?: 'int8' | 'int4';
  readonly headQuant?: 'int8' | 'int4';
}

/** Read a directory into LlamaWeights (placeholders for quantized matrices) and its identity. */
function streamHfBase(dir: string, options: StreamOptions): { loaded: LoadedBase; quantized: Map<string, QuantizedArray> } {
  const layout = readHfLayout(dir);
  const c = layout.config;
  const expected = expectedTensors(c, layout);
  // check everything the headers tell before reading any data
  for (const [name, want] of expected) {
    const t = layout.tensors.get(name);
    if (!t) throw new ModelFormatError(`${layout.weightsSource} has no tensor "${name}", which config.json requires`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') throw new ModelFormatError(`${join(dir, t.file)}: tensor "${name}" has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
    if (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i])) {
      throw new ModelFormatError(`${join(dir, t.file)}: tensor "${name}" has shape [${t.shape.join(', ')}], but config.json implies [${want.shape.join(', ')}]`);
    }
  }
  const permute = architectureOf(c) === 'llama' && c.ropeStyle !== 'neox';
  const quantized = new Map<string, QuantizedArray>();
  const mats = new Map<string, Float32Array>();
  const vecs = new Map<string, Float32Array>();
  let embedding: Float32Array | undefined;
  let classifier: Float32Array | undefined;
  let rmsFinal: Float32Array | undefined;
  const take = (t: HfTensorEntry, raw: Float32Array): void => {
    const slot = (expected.get(t.name) as { slot: Slot }).slot;
    let v = raw;
    if (slot.kind === 'zero') {
      if (v.some((x) => x !== 0)) throw new ModelFormatError(`${join(dir, t.file)}: tensor "${t.name}" is a non-zero o_proj bias, which fedtune's attention does not have`);
      return;
    }
    if (permute && slot.kind === 'matrix' && (slot.name === 'wq' || slot.name === 'wk')) v = permuteHalvesToPairs(v, slot.name === 'wq' ? c.nHeads : c.nKvHeads, c.dim);
    if (permute && slot.kind === 'vector' && (slot.name === 'bq' || slot.name === 'bk')) v = permuteHalvesToPairs(v, slot.name === 'bq' ? c.nHeads : c.nKvHeads, 1);
    switch (slot.kind) {
      case 'matrix':
        if (options.quant) {
          quantized.set(`${slot.layer}.${slot.name}`, quantize(v, options.quant));
          v = new Float32Array(0); // a distinct placeholder, as in load-base.ts
        }
        mats.set(`${slot.layer}.${slot.name}`, v);
        break;
      case 'vector':
        vecs.set(`${slot.layer}.${slot.name}`, v);
        break;
      case 'final':
        rmsFinal = v;
        break;
      case 'embedding':
      case 'classifier': {
        const key = slot.kind === 'classifier' || c.sharedClassifier ? 'classifier' : 'embedding';
        if (options.headQuant) {
          quantized.set(key, quantize(v, options.headQuant));
          v = new Float32Array(0);
        }
        if (slot.kind === 'embedding') embedding = v;
        else classifier = v;
      }
    }
  };
  const needed = new Set(expected.keys());
  const hashes = new Map<string, string>();
  for (const shard of layout.shards) {
    const hash = createHash('sha256');
    // only the tensors this shard is the index's choice for
    const mine = new Set([...needed].filter((n) => layout.tensors.get(n)?.file === shard.file));
    streamShard(shard, hash, mine, take);
    hashes.set(shard.file, hash.digest('hex'));
  }
  const layers: LayerWeights[] = Array.from({ length: c.nLayers }, (_, l) => {
    const lw: Record<string, Float32Array> = {};
    for (const name of MATRIX_NAMES) lw[name] = mats.get(`${l}.${name}`) as Float32Array;
    for (const name of layerVectors(c)) lw[name] = vecs.get(`${l}.${name}`) as Float32Array;
    return lw as unknown as LayerWeights;
  });
  const emb = embedding as Float32Array;
  const weights = { config: c, tokenEmbedding: emb, layers, rmsFinal: rmsFinal as Float32Array, classifier: c.sharedClassifier ? emb : (classifier as Float32Array) };
  return { loaded: { weights, sha256: hfIdentity(dir, layout.files, hashes), source: dir }, quantized };
}

/**
 * Read a checkpoint directory as float32 weights (for tests and conversions). A llama model's
 * q/k rows come back in GGUF (interleaved-pair) order. Throws ModelFormatError naming the file
 * for anything unreadable; nothing is allocated but plain arrays.
 */
export function readHfBase(dir: string): LoadedBase {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('readHfBase: dir must be a non-empty string');
  return streamHfBase(dir, {}).loaded;
}

/**
 * Load a checkpoint directory as a FrozenBase at `quant`. int8 and uncalibrated int4 quantize
 * each matrix as it is read; `none` and calibrated int4 (GPTQ needs float32) read float32.
 * Every check runs before any TensorFlow.js tensor exists, so a failure leaks nothing.
 */
export function loadHfBase(dir: string, quant: QuantMode, options: CreateBaseOptions = {}): FrozenBase {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('loadHfBase: dir must be a non-empty string');
  if (!QUANT_MODES.includes(quant)) throw new RangeError(`loadHfBase: quant must be one of ${QUANT_MODES.join(', ')}, got "${quant}"`);
  // a checkpoint of floats has no blocks of its own: native holds float32, as none does
  if (quant === 'none' || quant === 'native' || (quant === 'int4' && !options.uncalibrated)) return createBase(readHfBase(dir), quant, options);
  const headQuant = options.headQuant ?? defaultHeadQuant(quant);
  if (headQuant !== 'int8' && headQuant !== 'int4') throw new RangeError(`loadHfBase: streaming a ${quant} base needs a quantized options.headQuant, got "${headQuant}"`);
  const { loaded, quantized } = streamHfBase(dir, { quant, headQuant });
  return new FrozenBase(loaded, quant, { headQuant, quantized });
}
