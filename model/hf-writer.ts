/**
 * Writing a base as a Hugging Face checkpoint directory (config.json, safetensors single or
 * sharded with model.safetensors.index.json, optional tokenizer files), the inverse of
 * hf-base.ts: a llama model held in GGUF layout gets its q/k rows (and biases) turned back into
 * halves order, as transformers expects.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedBase } from './checkpoint.js';
import { architectureOf, headSize, llama3RopeFactors, validateConfig } from './config.js';
import { ARCHITECTURE_TRAITS, HF_NAMES, hfMatrixName, hfVectorName, layerVectors, permutePairsToHalves } from './arch-names.js';
import { bf16Bytes, f16Bytes, f32Bytes } from './gguf-writer.js';
import { HF_INDEX_FILE, HF_WEIGHTS_FILE } from './hf-files.js';
import type { Llama3RopeScaling } from './hf-config.js';
import { encodeSafetensors, type SafetensorsDtype, type SafetensorsTensor } from './safetensors.js';
import { MATRIX_NAMES, matrixShape } from './weights.js';

/** Options of {@link writeHfModel}. */
export interface HfWriteOptions {
  /** Dtype of every tensor. */
  readonly dtype: SafetensorsDtype;
  /** Number of safetensors shards (default 1: a single model.safetensors). */
  readonly shards?: number;
  /** Written as tokenizer.json / tokenizer_config.json when given. */
  readonly tokenizerJson?: object;
  readonly tokenizerConfig?: object;
  /** The llama3 scaling behind config.ropeFreqFactors; required when the config has them. */
  readonly ropeScaling?: Llama3RopeScaling;
}

const TORCH_DTYPE: Record<SafetensorsDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The config.json transformers would write for `loaded`'s config. */
function configJson(loaded: LoadedBase, options: HfWriteOptions): Record<string, unknown> {
  const c = loaded.weights.config;
  const arch = architectureOf(c);
  const traits = ARCHITECTURE_TRAITS[arch];
  let ropeScaling: Record<string, unknown> | null = null;
  if (c.ropeFreqFactors) {
    const s = options.ropeScaling;
    if (!s) throw new TypeError('writeHfModel: the config has ropeFreqFactors, so options.ropeScaling (the llama3 parameters) is required');
    const f = llama3RopeFactors(headSize(c), c.ropeTheta, s);
    if (f.some((x, i) => Math.abs(x - (c.ropeFreqFactors as readonly number[])[i]) > 1e-6 * x)) throw new RangeError('writeHfModel: options.ropeScaling does not give the config\'s ropeFreqFactors');
    ropeScaling = { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor, original_max_position_embeddings: s.originalContext };
  } else if (options.ropeScaling) throw new RangeError('writeHfModel: options.ropeScaling is given but the config has no ropeFreqFactors');
  return {
    architectures: [traits.hfArchitectures[0]],
    model_type: traits.hfModelTypes[0],
    torch_dtype: TORCH_DTYPE[options.dtype],
    hidden_act: 'silu',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: headSize(c),
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScaling,
    tie_word_embeddings: c.sharedClassifier,
    ...(arch === 'qwen2' ? {} : { attention_bias: c.attnBias === true }),
  };
}

/** Split tensors, in order, into `n` non-empty groups of about equal bytes. */
function split<T extends { data: Uint8Array }>(tensors: readonly T[], n: number): T[][] {
  const total = tensors.reduce((a, t) => a + t.data.byteLength, 0);
  const groups: T[][] = [[]];
  let done = 0;
  tensors.forEach((t, i) => {
    const left = tensors.length - i;
    const open = n - groups.length;
    const cur = groups[groups.length - 1];
    if (cur.length > 0 && open > 0 && (done >= (total * groups.length) / n || left <= open)) groups.push([]);
    groups[groups.length - 1].push(t);
    done += t.data.byteLength;
  });
  return groups;
}

/**
 * Write `loaded` to `dir` (created if needed) as a Hugging Face checkpoint of its family,
 * replacing any safetensors weights (and index) already there.
 * Throws RangeError for a config transformers cannot express (qwen2 without q/k/v biases, qwen3
 * without q/k norms, q/k norms outside qwen3, interleaved RoPE outside llama) or a bad `shards`.
 */
export function writeHfModel(dir: string, loaded: LoadedBase, options: HfWriteOptions): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('writeHfModel: dir must be a non-empty string');
  const c = validateConfig(loaded.weights.config, 'writeHfModel: loaded.weights.config');
  const arch = architectureOf(c);
  const traits = ARCHITECTURE_TRAITS[arch];
  if (!['F32', 'F16', 'BF16'].includes(options.dtype)) throw new RangeError(`writeHfModel: options.dtype must be F32, F16 or BF16, got "${String(options.dtype)}"`);
  if (traits.attnBias && !c.attnBias) throw new RangeError(`writeHfModel: a ${arch} checkpoint always has q/k/v biases but the config has attnBias false`);
  if (traits.qkNorm !== (c.qkNorm === true)) throw new RangeError(`writeHfModel: a ${arch} checkpoint ${traits.qkNorm ? 'always has' : 'cannot have'} q/k norms but the config has qkNorm ${c.qkNorm === true}`);
  const style = c.ropeStyle ?? 'interleaved';
  if (style === 'interleaved' && !traits.ggufPermutesQK) throw new RangeError(`writeHfModel: a ${arch} checkpoint rotates halves, so ropeStyle must be "neox", got "interleaved"`);
  const toHalves = style === 'interleaved';
  const config = configJson(loaded, options);
  const w = loaded.weights;
  const encode = options.dtype === 'F32' ? f32Bytes : options.dtype === 'F16' ? f16Bytes : bf16Bytes;
  const tensors: SafetensorsTensor[] = [];
  const add = (name: string, values: Float32Array, shape: number[]): void => {
    tensors.push({ name, dtype: options.dtype, shape, data: encode(values) });
  };
  add(HF_NAMES.tokenEmbedding, w.tokenEmbedding, [c.vocabSize, c.dim]);
  w.layers.forEach((lw, l) => {
    for (const name of MATRIX_NAMES) {
      let v = lw[name];
      if (toHalves && (name === 'wq' || name === 'wk')) v = permutePairsToHalves(v, name === 'wq' ? c.nHeads : c.nKvHeads, c.dim);
      add(hfMatrixName(l, name), v, matrixShape(c, name));
    }
    for (const name of layerVectors(c)) {
      let v = lw[name];
      if (!v) throw new RangeError(`writeHfModel: layer ${l} has no ${name} though the config calls for it`);
      if (toHalves && (name === 'bq' || name === 'bk')) v = permutePairsToHalves(v, name === 'bq' ? c.nHeads : c.nKvHeads, 1);
      add(hfVectorName(l, name), v, [v.length]);
    }
    // transformers' llama / qwen3 put a bias on o_proj as well when attention_bias is set: zero here
    if (c.attnBias && arch !== 'qwen2') add(`model.layers.${l}.self_attn.o_proj.bias`, new Float32Array(c.dim), [c.dim]);
  });
  add(HF_NAMES.rmsFinal, w.rmsFinal, [c.dim]);
  if (!c.sharedClassifier) add(HF_NAMES.classifier, w.classifier, [c.vocabSize, c.dim]);
  const shards = options.shards ?? 1;
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.length) throw new RangeError(`writeHfModel: options.shards must be an integer in [1, ${tensors.length}], got ${shards}`);
  mkdirSync(dir, { recursive: true });
  // weights of an earlier write would shadow (model.safetensors) or mix with these
  for (const f of readdirSync(dir)) if (f === HF_WEIGHTS_FILE || f === HF_INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)) rmSync(join(dir, f));
  const json = (o: unknown): string => `${JSON.stringify(o, null, 2)}\n`;
  writeFileSync(join(dir, 'config.json'), json(config));
  const meta = { format: 'pt' };
  if (shards === 1) writeFileSync(join(dir, HF_WEIGHTS_FILE), encodeSafetensors(tensors, meta));
  else {
    const weightMap: Record<string, string> = {};
    split(tensors, shards).forEach((group, i) => {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      writeFileSync(join(dir, file), encodeSafetensors(group, meta));
      for (const t of group) weightMap[t.name] = file;
    });
    const totalSize = tensors.reduce((a, t) => a + t.data.byteLength, 0);
    const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    writeFileSync(join(dir, HF_INDEX_FILE), json({ metadata: { total_size: totalSize }, weight_map: sorted }));
  }
  if (options.tokenizerJson !== undefined) writeFileSync(join(dir, 'tokenizer.json'), json(options.tokenizerJson));
  if (options.tokenizerConfig !== undefined) writeFileSync(join(dir, 'tokenizer_config.json'), json(options.tokenizerConfig));
}
