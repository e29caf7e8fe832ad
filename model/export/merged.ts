/**
 * The base with an adapter folded in (W ← W + (alpha / r) · B A, in float32 as fedtune's own
 * merge does), written as a GGUF model (F32 / F16 / Q8_0, the tokenizer metadata copied from
 * the base GGUF) or as a Hugging Face checkpoint directory (tokenizer files and llama3 rope
 * scaling copied from a HF base). Either loads as a base again; it serves without LoRA.
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ggufMatrixName } from '../arch-names.js';
import { baseFormat } from '../base-info.js';
import { ModelFormatError, readLlama2cCheckpoint, type LoadedBase } from '../checkpoint.js';
import { readGgufBase } from '../gguf-base.js';
import { ggufModelInput, type GgufModelTensorType } from '../gguf-model-writer.js';
import { GGUF_TENSOR_TYPE, GGUF_VALUE_TYPE, writeGguf, type GgufMetadataEntry } from '../gguf-writer.js';
import { closeGgufFile, openGgufFile } from '../gguf.js';
import { readHfBase } from '../hf-base.js';
import { addLowRank } from '../merge.js';
import { hfRopeScaling } from '../hf-config.js';
import { writeHfModel } from '../hf-writer.js';
import type { SafetensorsDtype } from '../safetensors.js';
import { MATRIX_NAMES, matrixShape, type LayerWeights } from '../weights.js';
import { adapterPairs, checkAdapterBase, type AdapterData } from './adapter-data.js';

/** Tensor types of a merged GGUF. */
export type MergedGgufType = 'F32' | 'F16' | 'Q8_0';

/**
 * New weights with the adapter folded in (each sum accumulated in float64, added in float32);
 * the input is not modified. Throws RangeError when the adapter does not fit the weights.
 */
export function mergeAdapterData(loaded: LoadedBase, data: AdapterData): LoadedBase {
  const pairs = adapterPairs({ ...data, baseConfig: loaded.weights.config }, 'mergeAdapterData');
  const layers = loaded.weights.layers.map((l) => ({ ...l })) as { -readonly [K in keyof LayerWeights]: LayerWeights[K] }[];
  const r = data.lora.rank;
  const s = data.lora.alpha / r;
  for (const { layer, name, a, b, out, inp } of pairs) layers[layer][name] = addLowRank(layers[layer][name], b, a, out, inp, r, s);
  return { ...loaded, weights: { ...loaded.weights, layers }, sha256: loaded.sha256 };
}

/** A base of any format read whole into float32. */
export function readBaseFloat32(path: string): LoadedBase {
  const format = baseFormat(path);
  return format === 'gguf' ? readGgufBase(path) : format === 'hf' ? readHfBase(path) : readLlama2cCheckpoint(path);
}

function readMergedBase(basePath: string, data: AdapterData, adapterSource: string): LoadedBase {
  const loaded = readBaseFloat32(basePath);
  checkAdapterBase(data, { config: loaded.weights.config, sha256: loaded.sha256 }, adapterSource, basePath);
  return mergeAdapterData(loaded, data);
}

const TYPE_NAMES = new Map<number, keyof typeof GGUF_VALUE_TYPE>(Object.entries(GGUF_VALUE_TYPE).map(([k, v]) => [v, k as keyof typeof GGUF_VALUE_TYPE]));

/** The `tokenizer.*` metadata of a GGUF file as writer entries (types kept). */
export function ggufTokenizerEntries(path: string): GgufMetadataEntry[] {
  const file = openGgufFile(path);
  try {
    const out: GgufMetadataEntry[] = [];
    for (const [key, value] of file.metadata) {
      if (!key.startsWith('tokenizer.')) continue;
      const chain = (file.metadataTypes?.get(key) ?? []).map((t) => TYPE_NAMES.get(t));
      if (chain.length === 0 || chain.some((t) => t === undefined)) throw new ModelFormatError(`${path}: metadata ${key} has no readable value type`);
      const [type, ...elementType] = chain as (keyof typeof GGUF_VALUE_TYPE)[];
      out.push({ key, type, ...(elementType.length > 0 ? { elementType } : {}), value });
    }
    if (!out.some((e) => e.key === 'tokenizer.ggml.model')) throw new ModelFormatError(`${path} has no tokenizer metadata to copy into the merged model`);
    return out;
  } finally {
    closeGgufFile(file);
  }
}

/** Options of {@link writeMergedGguf}. */
export interface MergedGgufOptions {
  /** Type of every matrix (default F32); a matrix whose rows are not whole Q8_0 blocks is written F16. */
  readonly type?: MergedGgufType;
  /** `general.name` (default "fedtune-merged"). */
  readonly name?: string;
  /** Where the adapter came from, for messages. */
  readonly adapterSource?: string;
}

/**
 * Merge the adapter into the GGUF base at `basePath` and write the result to `path` as a GGUF
 * model with the base's tokenizer. Refuses (AdapterFileError) an adapter made for another base,
 * and (ModelFormatError) a base that is not GGUF, whose tokenizer this cannot carry over.
 */
export function writeMergedGguf(path: string, basePath: string, data: AdapterData, options: MergedGgufOptions = {}): void {
  if (typeof path !== 'string' || path === '') throw new TypeError('writeMergedGguf: path must be a non-empty string');
  if (typeof basePath !== 'string' || basePath === '') throw new TypeError('writeMergedGguf: basePath must be a non-empty string');
  const type = options.type ?? 'F32';
  if (!['F32', 'F16', 'Q8_0'].includes(type)) throw new RangeError(`writeMergedGguf: options.type must be F32, F16 or Q8_0, got "${String(type)}"`);
  if (baseFormat(basePath) !== 'gguf') throw new ModelFormatError(`${basePath} is not a GGUF file; a merged GGUF takes its tokenizer from a GGUF base (give the base's GGUF, or merge to a Hugging Face directory)`);
  const tokenizer = ggufTokenizerEntries(basePath);
  const merged = readMergedBase(basePath, data, options.adapterSource ?? 'the adapter');
  const c = merged.weights.config;
  const rowLength = new Map<string, number>();
  for (let l = 0; l < c.nLayers; l++) for (const m of MATRIX_NAMES) rowLength.set(ggufMatrixName(l, m), matrixShape(c, m)[1]);
  const block = GGUF_TENSOR_TYPE[type].values;
  const typeOf = (name: string): GgufModelTensorType => ((rowLength.get(name) ?? c.dim) % block === 0 ? type : 'F16');
  writeGguf(path, ggufModelInput(merged, { tokenizer, typeOf, name: options.name ?? 'fedtune-merged' }));
}

/** Options of {@link writeMergedHf}. */
export interface MergedHfOptions {
  /** Dtype of every tensor (default F32). */
  readonly dtype?: SafetensorsDtype;
  readonly adapterSource?: string;
}

const HF_SIDE_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

/**
 * Merge the adapter into the base at `basePath` and write the result to `dir` as a Hugging Face
 * checkpoint. From a HF base the tokenizer files and llama3 rope scaling are carried over; from a
 * GGUF or llama2.c base only the weights and config.json are written (no tokenizer.json), and a
 * base with llama3 rope factors is refused, since GGUF does not record the scaling parameters.
 */
export function writeMergedHf(dir: string, basePath: string, data: AdapterData, options: MergedHfOptions = {}): void {
  if (typeof dir !== 'string' || dir === '') throw new TypeError('writeMergedHf: dir must be a non-empty string');
  if (typeof basePath !== 'string' || basePath === '') throw new TypeError('writeMergedHf: basePath must be a non-empty string');
  const format = baseFormat(basePath);
  const merged = readMergedBase(basePath, data, options.adapterSource ?? 'the adapter');
  let ropeScaling;
  if (format === 'hf') ropeScaling = hfRopeScaling(JSON.parse(readFileSync(join(basePath, 'config.json'), 'utf8')) as Record<string, unknown>, join(basePath, 'config.json'));
  else if (merged.weights.config.ropeFreqFactors) throw new ModelFormatError(`${basePath} has llama3 rope factors but no record of their scaling parameters, which config.json needs; merge from the Hugging Face checkpoint instead`);
  writeHfModel(dir, merged, { dtype: options.dtype ?? 'F32', ...(ropeScaling ? { ropeScaling } : {}) });
  if (format === 'hf') for (const f of HF_SIDE_FILES) if (existsSync(join(basePath, f))) copyFileSync(join(basePath, f), join(dir, f));
}
