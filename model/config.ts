/** The architecture of a Llama-family base model, as read from its checkpoint. */
export interface LlamaConfig {
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
}

/** Size of one attention head. */
export function headSize(c: LlamaConfig): number {
  return c.dim / c.nHeads;
}

/** Width of the key/value projections. */
export function kvDim(c: LlamaConfig): number {
  return (c.dim * c.nKvHeads) / c.nHeads;
}

/** Check a config for internal consistency; throws RangeError naming the bad field. */
export function validateConfig(c: LlamaConfig, where = 'LlamaConfig'): LlamaConfig {
  const ints: (keyof LlamaConfig)[] = ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'vocabSize', 'seqLen'];
  for (const k of ints) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v <= 0 || v > 1 << 24) throw new RangeError(`${where}: ${k} must be a positive integer, got ${v}`);
  }
  if (c.dim % c.nHeads !== 0) throw new RangeError(`${where}: dim ${c.dim} is not divisible by nHeads ${c.nHeads}`);
  if (c.nHeads % c.nKvHeads !== 0) throw new RangeError(`${where}: nHeads ${c.nHeads} is not divisible by nKvHeads ${c.nKvHeads}`);
  if (headSize(c) % 2 !== 0) throw new RangeError(`${where}: head size ${headSize(c)} must be even for RoPE`);
  return c;
}

/** Number of parameters in the base model (counting a shared head once). */
export function parameterCount(c: LlamaConfig): number {
  const kv = kvDim(c);
  const perLayer = 2 * c.dim + 2 * c.dim * c.dim + 2 * kv * c.dim + 3 * c.dim * c.hiddenDim;
  return c.vocabSize * c.dim * (c.sharedClassifier ? 1 : 2) + c.nLayers * perLayer + c.dim;
}
