/**
 * A fedtune model as a GGUF file llama.cpp loads: `{arch}.*` metadata, tensors under the
 * architecture's GGUF names in the types asked for, and the tokenizer's `tokenizer.ggml.*` keys.
 * Weights are written as fedtune holds them (llama q/k already in GGUF's interleaved order).
 * Used by tests and benches to build models of every family; also the base of GGUF export.
 */
import { GGUF_NAMES, ggufMatrixName, ggufVectorName, layerVectors } from './arch-names.js';
import type { LoadedBase } from './checkpoint.js';
import { architectureOf, headSize } from './config.js';
import { GGUF_TENSOR_TYPE, ggmlBytes, type GgufMetadataEntry, type GgufTensorInput, type GgufWriteInput } from './gguf-writer.js';
import { MATRIX_NAMES, matrixShape } from './weights.js';

/** A tensor type the model writer can produce. */
export type GgufModelTensorType = keyof typeof GGUF_TENSOR_TYPE;

/** The BPE tokenizer of a GGUF file, as `tokenizer.ggml.*` keys. */
export interface GgufBpeTokenizerMeta {
  readonly tokens: readonly string[];
  readonly merges: readonly string[];
  /** Per token: 1 normal, 3 control, 4 user-defined. */
  readonly tokenTypes: readonly number[];
  /** Pre-tokenizer name (`qwen2`, `llama-bpe`, `smollm`, …). */
  readonly pre: string;
  readonly bosId?: number;
  readonly eosId?: number;
  readonly eotId?: number;
  readonly padId?: number;
  readonly addBos?: boolean;
  readonly chatTemplate?: string;
}

/** The metadata entries of a byte-level BPE tokenizer. */
export function bpeTokenizerEntries(t: GgufBpeTokenizerMeta): GgufMetadataEntry[] {
  const out: GgufMetadataEntry[] = [
    { key: 'tokenizer.ggml.model', type: 'string', value: 'gpt2' },
    { key: 'tokenizer.ggml.pre', type: 'string', value: t.pre },
    { key: 'tokenizer.ggml.tokens', type: 'array', elementType: ['string'], value: [...t.tokens] },
    { key: 'tokenizer.ggml.token_type', type: 'array', elementType: ['i32'], value: [...t.tokenTypes] },
    { key: 'tokenizer.ggml.merges', type: 'array', elementType: ['string'], value: [...t.merges] },
  ];
  const id = (key: string, v: number | undefined): void => void (v !== undefined && out.push({ key, type: 'u32', value: v }));
  id('tokenizer.ggml.bos_token_id', t.bosId);
  id('tokenizer.ggml.eos_token_id', t.eosId);
  id('tokenizer.ggml.eot_token_id', t.eotId);
  id('tokenizer.ggml.padding_token_id', t.padId);
  if (t.addBos !== undefined) out.push({ key: 'tokenizer.ggml.add_bos_token', type: 'bool', value: t.addBos });
  if (t.chatTemplate !== undefined) out.push({ key: 'tokenizer.chat_template', type: 'string', value: t.chatTemplate });
  return out;
}

/** Options of {@link ggufModelInput}. */
export interface GgufModelOptions {
  /** Tokenizer metadata entries (e.g. from {@link bpeTokenizerEntries}). */
  readonly tokenizer: readonly GgufMetadataEntry[];
  /** Type of each 2-D tensor by GGUF name (default F32); 1-D tensors are always F32. */
  readonly typeOf?: (name: string) => GgufModelTensorType;
  /** `general.name` (default "fedtune"). */
  readonly name?: string;
  /** Encode K-quant tensors without the scale search (see ggmlEncode's `fast`; for big bench files). Default false. */
  readonly fastKQuants?: boolean;
}

/** The GGUF writer input of a loaded model: metadata, tokenizer and tensors. */
export function ggufModelInput(loaded: LoadedBase, options: GgufModelOptions): GgufWriteInput {
  const w = loaded.weights;
  const c = w.config;
  const arch = architectureOf(c);
  const hs = headSize(c);
  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key: `${arch}.${key}`, type: 'u32', value });
  const metadata: GgufMetadataEntry[] = [
    { key: 'general.architecture', type: 'string', value: arch },
    { key: 'general.name', type: 'string', value: options.name ?? 'fedtune' },
    u32('context_length', c.seqLen),
    u32('embedding_length', c.dim),
    u32('feed_forward_length', c.hiddenDim),
    u32('block_count', c.nLayers),
    u32('attention.head_count', c.nHeads),
    u32('attention.head_count_kv', c.nKvHeads),
    u32('attention.key_length', hs),
    u32('attention.value_length', hs),
    u32('rope.dimension_count', hs),
    { key: `${arch}.rope.freq_base`, type: 'f32', value: c.ropeTheta },
    { key: `${arch}.attention.layer_norm_rms_epsilon`, type: 'f32', value: c.normEps },
    u32('vocab_size', c.vocabSize),
    ...options.tokenizer,
  ];
  const tensors: GgufTensorInput[] = [];
  const put = (name: string, data: Float32Array, shape: number[]): void => {
    const type = shape.length === 1 ? 'F32' : (options.typeOf?.(name) ?? 'F32');
    tensors.push({ name, type, shape, data: ggmlBytes(type, data, { fast: options.fastKQuants === true }) });
  };
  put(`${GGUF_NAMES.tokenEmbedding}.weight`, w.tokenEmbedding, [c.dim, c.vocabSize]);
  if (c.ropeFreqFactors) put(`${GGUF_NAMES.ropeFreqs}.weight`, Float32Array.from(c.ropeFreqFactors), [hs / 2]);
  w.layers.forEach((lw, l) => {
    for (const v of layerVectors(c)) {
      const data = lw[v];
      if (!data) throw new RangeError(`ggufModelInput: layer ${l} lacks ${v}, which its config implies`);
      put(ggufVectorName(l, v), data, [data.length]);
    }
    for (const m of MATRIX_NAMES) {
      const [out, inp] = matrixShape(c, m);
      put(ggufMatrixName(l, m), lw[m], [inp, out]);
    }
  });
  put(`${GGUF_NAMES.rmsFinal}.weight`, w.rmsFinal, [c.dim]);
  if (!c.sharedClassifier) put(`${GGUF_NAMES.classifier}.weight`, w.classifier, [c.dim, c.vocabSize]);
  return { metadata, tensors };
}
