/**
 * One table of names per architecture (after llama.cpp's gguf-py): the GGUF and Hugging Face
 * names of every tensor, and what each family sets in {@link LlamaConfig}. fedtune's short
 * matrix names (wq … w3) are the keys; LoRA targets use them whatever the family.
 */
import type { Architecture, RopeStyle } from './config.js';
import type { MatrixName } from './weights.js';

/** Per-layer tensors other than the seven matrices. */
export type LayerVectorName = 'rmsAtt' | 'rmsFfn' | 'bq' | 'bk' | 'bv' | 'qNorm' | 'kNorm';

/** What distinguishes a family. */
export interface ArchitectureTraits {
  /** RoPE pairing of the q/k rows as stored in GGUF files of this family (llama.cpp's rope type). */
  readonly ggufRopeStyle: RopeStyle;
  /** RoPE pairing of Hugging Face checkpoints (always `neox`: the HF code rotates halves). */
  readonly hfRopeStyle: RopeStyle;
  /** Whether the GGUF converter permutes q/k rows of HF checkpoints into interleaved order. */
  readonly ggufPermutesQK: boolean;
  readonly attnBias: boolean;
  readonly qkNorm: boolean;
  /** Hugging Face `model_type` / `architectures[0]` values. */
  readonly hfModelTypes: readonly string[];
  readonly hfArchitectures: readonly string[];
}

/** The traits of each supported family. */
export const ARCHITECTURE_TRAITS: Readonly<Record<Architecture, ArchitectureTraits>> = {
  llama: { ggufRopeStyle: 'interleaved', hfRopeStyle: 'neox', ggufPermutesQK: true, attnBias: false, qkNorm: false, hfModelTypes: ['llama'], hfArchitectures: ['LlamaForCausalLM'] },
  qwen2: { ggufRopeStyle: 'neox', hfRopeStyle: 'neox', ggufPermutesQK: false, attnBias: true, qkNorm: false, hfModelTypes: ['qwen2'], hfArchitectures: ['Qwen2ForCausalLM'] },
  qwen3: { ggufRopeStyle: 'neox', hfRopeStyle: 'neox', ggufPermutesQK: false, attnBias: false, qkNorm: true, hfModelTypes: ['qwen3'], hfArchitectures: ['Qwen3ForCausalLM'] },
};

/** GGUF tensor names (without `.weight` / `.bias`), shared by the llama, qwen2 and qwen3 families. */
export const GGUF_NAMES = {
  tokenEmbedding: 'token_embd',
  rmsFinal: 'output_norm',
  classifier: 'output',
  ropeFreqs: 'rope_freqs',
  matrix: { wq: 'attn_q', wk: 'attn_k', wv: 'attn_v', wo: 'attn_output', w1: 'ffn_gate', w2: 'ffn_down', w3: 'ffn_up' } satisfies Record<MatrixName, string>,
  vector: { rmsAtt: 'attn_norm.weight', rmsFfn: 'ffn_norm.weight', bq: 'attn_q.bias', bk: 'attn_k.bias', bv: 'attn_v.bias', qNorm: 'attn_q_norm.weight', kNorm: 'attn_k_norm.weight' } satisfies Record<LayerVectorName, string>,
} as const;

/** Hugging Face (transformers) tensor names of the same families. */
export const HF_NAMES = {
  tokenEmbedding: 'model.embed_tokens.weight',
  rmsFinal: 'model.norm.weight',
  classifier: 'lm_head.weight',
  matrix: { wq: 'self_attn.q_proj', wk: 'self_attn.k_proj', wv: 'self_attn.v_proj', wo: 'self_attn.o_proj', w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj' } satisfies Record<MatrixName, string>,
  vector: { rmsAtt: 'input_layernorm.weight', rmsFfn: 'post_attention_layernorm.weight', bq: 'self_attn.q_proj.bias', bk: 'self_attn.k_proj.bias', bv: 'self_attn.v_proj.bias', qNorm: 'self_attn.q_norm.weight', kNorm: 'self_attn.k_norm.weight' } satisfies Record<LayerVectorName, string>,
} as const;

/** GGUF name of a layer's matrix, e.g. `blk.3.attn_q.weight`. */
export function ggufMatrixName(layer: number, name: MatrixName): string {
  return `blk.${layer}.${GGUF_NAMES.matrix[name]}.weight`;
}

/** GGUF name of a layer's vector tensor, e.g. `blk.3.attn_q.bias`. */
export function ggufVectorName(layer: number, name: LayerVectorName): string {
  return `blk.${layer}.${GGUF_NAMES.vector[name]}`;
}

/** Hugging Face name of a layer's matrix, e.g. `model.layers.3.self_attn.q_proj.weight`. */
export function hfMatrixName(layer: number, name: MatrixName): string {
  return `model.layers.${layer}.${HF_NAMES.matrix[name]}.weight`;
}

/** Hugging Face name of a layer's vector tensor. */
export function hfVectorName(layer: number, name: LayerVectorName): string {
  return `model.layers.${layer}.${HF_NAMES.vector[name]}`;
}

/** The vector tensors a layer of `arch` has. */
export function layerVectors(c: { readonly attnBias?: boolean; readonly qkNorm?: boolean }): LayerVectorName[] {
  return ['rmsAtt', 'rmsFfn', ...(c.attnBias ? (['bq', 'bk', 'bv'] as const) : []), ...(c.qkNorm ? (['qNorm', 'kNorm'] as const) : [])];
}

/**
 * The GGUF converter's q/k row permutation for llama: within each of `heads` heads of `hs` rows,
 * HF row s·hs/2 + j moves to row 2j + s (halves → interleaved pairs). `rows` is [heads·hs, cols].
 */
export function permuteHalvesToPairs(rows: Float32Array, heads: number, cols: number): Float32Array {
  const hs = rows.length / cols / heads;
  const out = new Float32Array(rows.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < hs / 2; j++) {
        const from = (h * hs + s * (hs / 2) + j) * cols;
        out.set(rows.subarray(from, from + cols), (h * hs + 2 * j + s) * cols);
      }
    }
  }
  return out;
}

/** The inverse of {@link permuteHalvesToPairs} (interleaved pairs → halves), for writing HF layout. */
export function permutePairsToHalves(rows: Float32Array, heads: number, cols: number): Float32Array {
  const hs = rows.length / cols / heads;
  const out = new Float32Array(rows.length);
  for (let h = 0; h < heads; h++) {
    for (let s = 0; s < 2; s++) {
      for (let j = 0; j < hs / 2; j++) {
        const to = (h * hs + s * (hs / 2) + j) * cols;
        out.set(rows.subarray((h * hs + 2 * j + s) * cols, (h * hs + 2 * j + s + 1) * cols), to);
      }
    }
  }
  return out;
}
