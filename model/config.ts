/**
 * The architecture of a base model, as read from its checkpoint: one description for the
 * llama2.c models, Llama 3 / SmolLM2 (`llama`), Qwen2 / Qwen2.5 (`qwen2`) and Qwen3 (`qwen3`).
 * The families differ only in the fields below; the forward pass has no per-family branches.
 * The optional fields default to the llama2.c model's behaviour, so older configs (as recorded
 * in adapter files) keep their meaning.
 */

/** Architectures fedtune runs: GGUF `general.architecture` names. */
export const ARCHITECTURES = ['llama', 'qwen2', 'qwen3'] as const;
/** One of {@link ARCHITECTURES}. */
export type Architecture = (typeof ARCHITECTURES)[number];

/**
 * How RoPE pairs a head's dimensions: `interleaved` rotates (2i, 2i+1) (llama2.c, and llama GGUF
 * files, whose q/k rows the converter permuted); `neox` rotates (i, i + headDim/2) (Qwen, and
 * Hugging Face llama checkpoints before that permutation).
 */
export type RopeStyle = 'interleaved' | 'neox';

/** The architecture of a base model. */
export interface LlamaConfig {
  /** Family (default `llama`). */
  readonly arch?: Architecture;
  /** Model (residual stream) width. */
  readonly dim: number;
  /** Width of the SwiGLU feed-forward layer. */
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  /** Key/value heads; each serves nHeads / nKvHeads query heads (grouped-query attention). */
  readonly nKvHeads: number;
  readonly vocabSize: number;
  /** Longest context the model was trained for. */
  readonly seqLen: number;
  /** True when the output head shares the token-embedding matrix. */
  readonly sharedClassifier: boolean;
  /** RMSNorm epsilon (1e-5 for llama2.c models). */
  readonly normEps: number;
  /** RoPE base frequency (10000 for llama2.c models). */
  readonly ropeTheta: number;
  /** Width of one attention head (default dim / nHeads; Qwen3 differs). */
  readonly headDim?: number;
  /** RoPE pairing (default `interleaved`). */
  readonly ropeStyle?: RopeStyle;
  /**
   * Per-frequency divisors of the RoPE frequencies, headDim / 2 of them (Llama 3.1+'s `llama3`
   * scaling, stored in GGUF as the `rope_freqs` tensor). Absent: all 1.
   */
  readonly ropeFreqFactors?: readonly number[];
  /** Biases on the q, k and v projections (Qwen2). Default false. */
  readonly attnBias?: boolean;
  /** Per-head RMSNorm of q and of k before RoPE (Qwen3). Default false. */
  readonly qkNorm?: boolean;
}

/** Size of one attention head. */
export function headSize(c: LlamaConfig): number {
  return c.headDim ?? c.dim / c.nHeads;
}

/** Width of the query projection (nHeads · headDim). */
export function qDim(c: LlamaConfig): number {
  return c.nHeads * headSize(c);
}

/** Width of the key/value projections (nKvHeads · headDim). */
export function kvDim(c: LlamaConfig): number {
  return c.nKvHeads * headSize(c);
}

/** The family of a config (`llama` when unset). */
export function architectureOf(c: LlamaConfig): Architecture {
  return c.arch ?? 'llama';
}

/**
 * The `llama3` rope-scaling rule (Llama 3.1+) as per-frequency divisors: frequencies whose
 * wavelength is shorter than originalContext / highFreqFactor stay, longer than
 * originalContext / lowFreqFactor are divided by `factor`, and those between are blended.
 */
export function llama3RopeFactors(headDim: number, theta: number, s: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }): number[] {
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  const out: number[] = [];
  for (let i = 0; i < headDim; i += 2) {
    const freq = 1 / Math.pow(theta, i / headDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out.push(1);
    else if (wavelen > lowWavelen) out.push(s.factor);
    else {
      const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out.push(1 / ((1 - smooth) / s.factor + smooth));
    }
  }
  return out;
}

/** Check a config for internal consistency; throws RangeError naming the bad field. */
export function validateConfig(c: LlamaConfig, where = 'LlamaConfig'): LlamaConfig {
  const ints: (keyof LlamaConfig)[] = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'seqLen'];
  for (const k of ints) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v <= 0 || v > 1 << 24) throw new RangeError(`${where}: ${k} must be a positive integer, got ${v}`);
  }
  if (c.arch !== undefined && !ARCHITECTURES.includes(c.arch)) throw new RangeError(`${where}: arch must be one of ${ARCHITECTURES.join(', ')}, got "${String(c.arch)}"`);
  if (c.headDim === undefined && c.dim % c.nHeads !== 0) throw new RangeError(`${where}: dim ${c.dim} is not divisible by nHeads ${c.nHeads}`);
  if (c.headDim !== undefined && (!Number.isInteger(c.headDim) || c.headDim <= 0 || c.headDim > 1 << 16)) throw new RangeError(`${where}: headDim must be a positive integer, got ${c.headDim}`);
  if (c.nHeads % c.nKvHeads !== 0) throw new RangeError(`${where}: nHeads ${c.nHeads} is not divisible by nKvHeads ${c.nKvHeads}`);
  if (headSize(c) % 2 !== 0) throw new RangeError(`${where}: head size ${headSize(c)} must be even for RoPE`);
  if (c.ropeStyle !== undefined && c.ropeStyle !== 'interleaved' && c.ropeStyle !== 'neox') throw new RangeError(`${where}: ropeStyle must be "interleaved" or "neox", got "${String(c.ropeStyle)}"`);
  if (!(c.normEps > 0 && c.normEps < 1)) throw new RangeError(`${where}: normEps must be in (0, 1), got ${c.normEps}`);
  if (!(c.ropeTheta > 0 && Number.isFinite(c.ropeTheta))) throw new RangeError(`${where}: ropeTheta must be a positive number, got ${c.ropeTheta}`);
  if (c.ropeFreqFactors !== undefined) {
    if (c.ropeFreqFactors.length !== headSize(c) / 2) throw new RangeError(`${where}: ropeFreqFactors has ${c.ropeFreqFactors.length} values, expected headDim / 2 = ${headSize(c) / 2}`);
    if (!c.ropeFreqFactors.every((f) => f > 0 && Number.isFinite(f))) throw new RangeError(`${where}: ropeFreqFactors must be positive finite numbers`);
  }
  return c;
}

/** Number of parameters in the base model (counting a shared head once). */
export function parameterCount(c: LlamaConfig): number {
  const kv = kvDim(c);
  const q = qDim(c);
  const hs = headSize(c);
  const perLayer = 2 * c.dim + 2 * q * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim + (c.attnBias ? q + 2 * kv : 0) + (c.qkNorm ? 2 * hs : 0);
  return c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2) + c.nLayers * perLayer + c.dim;
}
