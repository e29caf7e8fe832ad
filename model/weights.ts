import { kvDim, qDim, type LlamaConfig } from './config.js';

/** The seven projection matrices of a Llama block that LoRA can target. */
export const MATRIX_NAMES = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;
/** One of {@link MATRIX_NAMES}. */
export type MatrixName = (typeof MATRIX_NAMES)[number];

/** Float32 weights of one transformer block; matrices are row-major [out, in] (y = W x). */
export interface LayerWeights {
  readonly rmsAtt: Float32Array;
  readonly rmsFfn: Float32Array;
  readonly wq: Float32Array;
  readonly wk: Float32Array;
  readonly wv: Float32Array;
  readonly wo: Float32Array;
  readonly w1: Float32Array;
  readonly w2: Float32Array;
  readonly w3: Float32Array;
  /** Biases of the q, k and v projections ([qDim], [kvDim], [kvDim]) when config.attnBias. */
  readonly bq?: Float32Array;
  readonly bk?: Float32Array;
  readonly bv?: Float32Array;
  /** Per-head RMSNorm weights of q and k ([headDim] each) when config.qkNorm. */
  readonly qNorm?: Float32Array;
  readonly kNorm?: Float32Array;
}

/** All float32 weights of a Llama model, as a checkpoint reader produces them. */
export interface LlamaWeights {
  readonly config: LlamaConfig;
  /** [vocabSize, dim] */
  readonly tokenEmbedding: Float32Array;
  readonly layers: readonly LayerWeights[];
  /** [dim] */
  readonly rmsFinal: Float32Array;
  /** Output head [vocabSize, dim]; the same array as tokenEmbedding when the head is shared. */
  readonly classifier: Float32Array;
}

/** Shape [out, in] of a block matrix. */
export function matrixShape(c: LlamaConfig, name: MatrixName): [number, number] {
  switch (name) {
    case 'wq':
      return [qDim(c), c.dim];
    case 'wo':
      return [c.dim, qDim(c)];
    case 'wk':
    case 'wv':
      return [kvDim(c), c.dim];
    case 'w1':
    case 'w3':
      return [c.hiddenDim, c.dim];
    case 'w2':
      return [c.dim, c.hiddenDim];
  }
}

/** True if `s` names a block matrix. */
export function isMatrixName(s: string): s is MatrixName {
  return (MATRIX_NAMES as readonly string[]).includes(s);
}
