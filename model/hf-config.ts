/**
 * A Hugging Face `config.json` (transformers) as a {@link LlamaConfig}, for the llama, qwen2 and
 * qwen3 families. The result is the config fedtune holds the model under, which is GGUF layout:
 * a `llama` model gets ropeStyle `interleaved` (its q/k rows are permuted on load, as llama.cpp's
 * converter does), qwen2 / qwen3 keep `neox`. So the same model read from a HF directory or a
 * GGUF file has one config.
 *
 * Canonical form: `arch` and `ropeStyle` are always set; `headDim` only when it differs from
 * hidden_size / num_attention_heads; `attnBias` / `qkNorm` only when true; `ropeFreqFactors` only
 * for `llama3` rope scaling.
 */
import { ModelFormatError } from './checkpoint.js';
import { ARCHITECTURE_TRAITS } from './arch-names.js';
import { ARCHITECTURES, llama3RopeFactors, validateConfig, type Architecture, type LlamaConfig } from './config.js';

/** The parameters of transformers' `llama3` rope scaling (Llama 3.1+). */
export interface Llama3RopeScaling {
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  /** `original_max_position_embeddings`. */
  readonly originalContext: number;
}

function supportedList(): string {
  return ARCHITECTURES.flatMap((a) => ARCHITECTURE_TRAITS[a].hfModelTypes).join(', ');
}

/** The family a config.json names by `model_type` (or, failing that, `architectures[0]`). */
export function hfArchitecture(json: Record<string, unknown>, source: string): Architecture {
  const modelType = json.model_type;
  const archs = Array.isArray(json.architectures) ? (json.architectures as unknown[]) : [];
  for (const a of ARCHITECTURES) {
    const t = ARCHITECTURE_TRAITS[a];
    if (typeof modelType === 'string' ? t.hfModelTypes.includes(modelType) : typeof archs[0] === 'string' && t.hfArchitectures.includes(archs[0])) return a;
  }
  const named = typeof modelType === 'string' ? `model_type "${modelType}"` : archs.length ? `architectures ${JSON.stringify(archs)}` : 'no model_type';
  throw new ModelFormatError(`${source} has ${named}; supported model types are ${supportedList()}`);
}

/** The `llama3` rope-scaling parameters of a config.json, or undefined when it has no scaling. */
export function hfRopeScaling(json: Record<string, unknown>, source: string): Llama3RopeScaling | undefined {
  const rs = json.rope_scaling ?? json.rope_parameters;
  if (rs === undefined || rs === null) return undefined;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw new ModelFormatError(`${source}: rope_scaling is not an object`);
  const r = rs as Record<string, unknown>;
  const type = r.rope_type ?? r.type;
  if (type === undefined || type === 'default') return undefined;
  if (type !== 'llama3') throw new ModelFormatError(`${source} uses rope_scaling type "${String(type)}"; only "llama3" scaling is supported`);
  const num = (k: string): number => {
    const v = r[k];
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new ModelFormatError(`${source}: rope_scaling.${k} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const s = { factor: num('factor'), lowFreqFactor: num('low_freq_factor'), highFreqFactor: num('high_freq_factor'), originalContext: num('original_max_position_embeddings') };
  if (!(s.highFreqFactor > s.lowFreqFactor)) throw new ModelFormatError(`${source}: rope_scaling.high_freq_factor (${s.highFreqFactor}) must exceed low_freq_factor (${s.lowFreqFactor})`);
  return s;
}

/**
 * The LlamaConfig of a parsed config.json. `source` (the file's path) names it in errors.
 * Throws ModelFormatError for an unsupported model_type, rope scaling, activation or MLP bias,
 * a missing or non-numeric field, or values validateConfig refuses.
 */
export function hfConfigToLlama(json: unknown, source: string): LlamaConfig {
  if (typeof source !== 'string') throw new TypeError('hfConfigToLlama: source must be a string');
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ModelFormatError(`${source} is not a JSON object`);
  const j = json as Record<string, unknown>;
  const arch = hfArchitecture(j, source);
  const traits = ARCHITECTURE_TRAITS[arch];
  const num = (k: string, fallback?: number): number => {
    const v = j[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelFormatError(`${source}: ${k} must be a number, got ${JSON.stringify(v ?? null)}`);
    return v;
  };
  const bool = (k: string, fallback: boolean): boolean => {
    const v = j[k] ?? fallback;
    if (typeof v !== 'boolean') throw new ModelFormatError(`${source}: ${k} must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const act = j.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ModelFormatError(`${source}: hidden_act "${String(act)}" is not supported (only silu)`);
  if (bool('mlp_bias', false)) throw new ModelFormatError(`${source}: mlp_bias is true; biases on the MLP projections are not supported`);
  if (bool('use_sliding_window', false)) throw new ModelFormatError(`${source}: use_sliding_window is true; sliding-window attention is not supported`);
  const dim = num('hidden_size');
  const nHeads = num('num_attention_heads');
  const headDim = j.head_dim === undefined || j.head_dim === null ? undefined : num('head_dim');
  const ropeTheta = num('rope_theta', (j.rope_parameters as Record<string, unknown> | undefined)?.rope_theta as number | undefined ?? 10000);
  // qwen2 always has q/k/v biases; llama and qwen3 have them when attention_bias is set
  const attnBias = traits.attnBias || bool('attention_bias', false);
  const base: LlamaConfig = {
    arch,
    dim,
    hiddenDim: num('intermediate_size'),
    nLayers: num('num_hidden_layers'),
    nHeads,
    nKvHeads: num('num_key_value_heads', nHeads),
    vocabSize: num('vocab_size'),
    seqLen: num('max_position_embeddings'),
    sharedClassifier: bool('tie_word_embeddings', false),
    normEps: num('rms_norm_eps'),
    ropeTheta,
    ropeStyle: traits.ggufRopeStyle,
    ...(headDim !== undefined && headDim * nHeads !== dim ? { headDim } : {}),
    ...(attnBias ? { attnBias: true } : {}),
    ...(traits.qkNorm ? { qkNorm: true } : {}),
  };
  let config: LlamaConfig = base;
  try {
    validateConfig(base);
    const scaling = hfRopeScaling(j, source);
    if (scaling) config = { ...base, ropeFreqFactors: llama3RopeFactors(headDim ?? dim / nHeads, ropeTheta, scaling).map(Math.fround) }; // float32, as GGUF's rope_freqs and llama.cpp hold them
    return validateConfig(config);
  } catch (e) {
    if (e instanceof RangeError) throw new ModelFormatError(`${source} describes an invalid model: ${e.message}`);
    throw e;
  }
}
