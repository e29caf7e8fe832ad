/**
 * The architecture of a GGUF file's model, read from its `{arch}.*` metadata and the tensors it
 * has (biases, q/k norms, rope_freqs, a separate output head) — without TensorFlow.js, so the
 * coordinator can read a base's identity.
 */
import { ARCHITECTURE_TRAITS, GGUF_NAMES, ggufVectorName } from './arch-names.js';
import { ModelFormatError } from './checkpoint.js';
import { ARCHITECTURES, validateConfig, type Architecture, type LlamaConfig } from './config.js';
import { ggufTensorF32, ggufTensorRaw, type GgufFile, type GgufTensorInfo } from './gguf.js';

/** The shortest decimal that rounds to the same float32 (so a stored 1e-5 reads back as 1e-5). */
function shortF32(x: number): number {
  for (let p = 1; p < 17; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

export function tensorMap(file: GgufFile): Map<string, GgufTensorInfo> {
  return new Map(file.tensors.map((t) => [t.name, t]));
}

/** True when the file has no output head, or one byte-identical to the token embedding (a tied head written out). */
function sharesEmbedding(file: GgufFile, tensors: Map<string, GgufTensorInfo>): boolean {
  const out = tensors.get(`${GGUF_NAMES.classifier}.weight`);
  const emb = tensors.get(`${GGUF_NAMES.tokenEmbedding}.weight`);
  if (!out) return true;
  if (!emb || out.type !== emb.type || out.dims.join() !== emb.dims.join()) return false;
  return Buffer.from(ggufTensorRaw(file, out)).equals(ggufTensorRaw(file, emb));
}

/** The architecture of a GGUF file's model, from its metadata and the tensors it has. */
export function ggufConfig(file: GgufFile): LlamaConfig {
  const src = file.source;
  const m = file.metadata;
  const archRaw = m.get('general.architecture');
  if (typeof archRaw !== 'string' || !(ARCHITECTURES as readonly string[]).includes(archRaw)) {
    throw new ModelFormatError(`${src} holds architecture "${String(archRaw ?? 'none')}"; supported: ${ARCHITECTURES.join(', ')}`);
  }
  const arch = archRaw as Architecture;
  const num = (key: string, dflt?: number): number => {
    const v = m.get(`${arch}.${key}`) ?? dflt;
    if (v === undefined) throw new ModelFormatError(`${src} lacks the metadata key ${arch}.${key}`);
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new ModelFormatError(`${src}: metadata ${arch}.${key} is not a number`);
    return Number(v);
  };
  const tensors = tensorMap(file);
  const emb = tensors.get(`${GGUF_NAMES.tokenEmbedding}.weight`);
  if (!emb) throw new ModelFormatError(`${src} lacks the tensor ${GGUF_NAMES.tokenEmbedding}.weight`);
  const scaling = m.get(`${arch}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== 'none') throw new ModelFormatError(`${src} uses rope scaling "${String(scaling)}", which fedtune does not implement (only llama3 frequency factors)`);
  const dim = num('embedding_length');
  const heads = num('attention.head_count');
  const headDim = num('attention.key_length', dim / heads);
  const rotary = num('rope.dimension_count', headDim);
  if (rotary !== headDim) throw new ModelFormatError(`${src} rotates ${rotary} of ${headDim} head dimensions; fedtune needs RoPE over the whole head`);
  const valueLen = num('attention.value_length', headDim);
  if (valueLen !== headDim) throw new ModelFormatError(`${src} has value heads of ${valueLen} and key heads of ${headDim}; fedtune needs them equal`);
  const traits = ARCHITECTURE_TRAITS[arch];
  const freqs = tensors.get(`${GGUF_NAMES.ropeFreqs}.weight`);
  let config: LlamaConfig = {
    arch,
    ropeStyle: traits.ggufRopeStyle,
    dim,
    hiddenDim: num('feed_forward_length'),
    nLayers: num('block_count'),
    nHeads: heads,
    nKvHeads: num('attention.head_count_kv', heads),
    vocabSize: emb.dims[1] ?? 0,
    seqLen: num('context_length'),
    sharedClassifier: sharesEmbedding(file, tensors),
    normEps: shortF32(num('attention.layer_norm_rms_epsilon', 1e-5)),
    ropeTheta: shortF32(num('rope.freq_base', 10000)),
    ...(headDim !== dim / heads ? { headDim } : {}),
    ...(tensors.has(ggufVectorName(0, 'bq')) ? { attnBias: true } : {}),
    ...(tensors.has(ggufVectorName(0, 'qNorm')) ? { qkNorm: true } : {}),
  };
  if (freqs) {
    if (freqs.dims.length !== 1 || freqs.dims[0] !== headDim / 2) throw new ModelFormatError(`${src}: tensor rope_freqs.weight has dims [${freqs.dims.join(', ')}], expected [${headDim / 2}]`);
    config = { ...config, ropeFreqFactors: Array.from(ggufTensorF32(file, freqs)) };
  }
  try {
    return validateConfig(config, `${src} metadata`);
  } catch (e) {
    throw new ModelFormatError(`${src} has an inconsistent ${arch} config: ${(e as Error).message}`);
  }
}

