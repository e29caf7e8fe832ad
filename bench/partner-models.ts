/**
 * Partner bases at their real shapes (Qwen2.5-0.5B, SmolLM2-135M, Qwen3-0.6B) with random
 * weights, written as GGUF files llama.cpp and fedtune both load: a synthetic byte-level BPE
 * vocabulary of the real size, and the weights drawn tensor by tensor as the writer asks for
 * them (never the whole model in float32). Used by bench/partner-bases.ts.
 */
import {
  BYTE_TO_CHAR,
  bpeTokenizerEntries,
  ggufModelInput,
  nextGaussian,
  seededRng,
  writeGguf,
  headSize,
  kvDim,
  qDim,
  MATRIX_NAMES,
  matrixShape,
  type GgufModelTensorType,
  type LayerWeights,
  type LlamaConfig,
  type LoadedBase,
} from '../model/index.js';

/** A partner model of the bench. */
export interface PartnerModel {
  readonly name: string;
  readonly config: LlamaConfig;
  /** GGUF `tokenizer.ggml.pre`. */
  readonly pre: string;
}

/** The three partner architectures at their published shapes (bench context 512: memory does not depend on it). */
export const PARTNER_MODELS: readonly PartnerModel[] = [
  {
    name: 'Qwen2.5-0.5B',
    pre: 'qwen2',
    config: { arch: 'qwen2', ropeStyle: 'neox', dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, headDim: 64, vocabSize: 151936, seqLen: 32768, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1e6, attnBias: true },
  },
  {
    name: 'SmolLM2-135M',
    pre: 'smollm',
    config: { arch: 'llama', ropeStyle: 'interleaved', dim: 576, hiddenDim: 1536, nLayers: 30, nHeads: 9, nKvHeads: 3, headDim: 64, vocabSize: 49152, seqLen: 8192, sharedClassifier: true, normEps: 1e-5, ropeTheta: 100000 },
  },
  {
    name: 'Qwen3-0.6B',
    pre: 'qwen2',
    config: { arch: 'qwen3', ropeStyle: 'neox', dim: 1024, hiddenDim: 3072, nLayers: 28, nHeads: 16, nKvHeads: 8, headDim: 128, vocabSize: 151936, seqLen: 40960, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1e6, qkNorm: true },
  },
];

/** A bench file type: Q8_0 throughout, or a Q4_K_M-like mix. */
export type PartnerFileType = 'Q8_0' | 'Q4_K_M';

/**
 * The type of tensor `name` with rows of `rowLength` values: Q4_K_M-like is Q6_K for attn_v,
 * ffn_down and token_embd, Q4_K elsewhere — but Q8_0 where the rows are not a multiple of 256
 * (llama.cpp's own Q4_K_M falls back to Q5_0 / Q8_0 there; fedtune has no Q5_0).
 */
export function partnerTensorType(file: PartnerFileType, name: string, rowLength: number): GgufModelTensorType {
  if (file === 'Q8_0' || rowLength % 256 !== 0) return 'Q8_0';
  return /attn_v|ffn_down|^output\.|^token_embd/.test(name) ? 'Q6_K' : 'Q4_K';
}

const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
const MERGES: [string, string][] = [['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['i', 'n'], ['Ġ', 'a'], ['e', 'r'], ['o', 'n'], ['Ġ', 's']];

/**
 * A synthetic byte-level BPE vocabulary of `vocabSize` tokens: the 256 byte symbols, a few merges
 * and their results, ASCII filler tokens, and the Qwen specials last (control tokens).
 */
export function syntheticVocabulary(vocabSize: number): { tokens: string[]; merges: string[]; tokenTypes: number[]; endOfText: number; imEnd: number } {
  const tokens = [...BYTE_TO_CHAR];
  for (const [a, b] of MERGES) tokens.push(a + b);
  const nFill = vocabSize - tokens.length - SPECIALS.length;
  if (nFill < 0) throw new RangeError(`syntheticVocabulary: vocabSize ${vocabSize} is too small`);
  for (let i = 0; i < nFill; i++) tokens.push(`zzf${i}`);
  tokens.push(...SPECIALS);
  const tokenTypes = tokens.map((_, i) => (i >= vocabSize - SPECIALS.length ? 3 : 1));
  return { tokens, merges: MERGES.map(([a, b]) => `${a} ${b}`), tokenTypes, endOfText: vocabSize - 3, imEnd: vocabSize - 1 };
}

/**
 * A LoadedBase whose arrays are drawn (Normal(0, std), norms 1, biases 0) only when read, each
 * time anew: the GGUF writer reads each tensor once, so only one float32 tensor lives at a time.
 */
export function lazyRandomBase(config: LlamaConfig, seed: number, std = 0.02): LoadedBase {
  let k = 0;
  const gauss = (n: number): Float32Array => {
    const rng = seededRng(seed * 1000 + k++);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = std * nextGaussian(rng);
    return a;
  };
  const lazy = (o: Record<string, unknown>, key: string, make: () => Float32Array): void => {
    Object.defineProperty(o, key, { get: make, enumerable: true });
  };
  const hs = headSize(config);
  const layers = Array.from({ length: config.nLayers }, () => {
    const lw: Record<string, unknown> = {};
    lazy(lw, 'rmsAtt', () => new Float32Array(config.dim).fill(1));
    lazy(lw, 'rmsFfn', () => new Float32Array(config.dim).fill(1));
    for (const m of MATRIX_NAMES) lazy(lw, m, () => gauss(matrixShape(config, m).reduce((a, b) => a * b)));
    if (config.attnBias) {
      lazy(lw, 'bq', () => new Float32Array(qDim(config)));
      lazy(lw, 'bk', () => new Float32Array(kvDim(config)));
      lazy(lw, 'bv', () => new Float32Array(kvDim(config)));
    }
    if (config.qkNorm) {
      lazy(lw, 'qNorm', () => new Float32Array(hs).fill(1));
      lazy(lw, 'kNorm', () => new Float32Array(hs).fill(1));
    }
    return lw as unknown as LayerWeights;
  });
  const weights: Record<string, unknown> = { config, layers };
  lazy(weights, 'tokenEmbedding', () => gauss(config.vocabSize * config.dim));
  lazy(weights, 'classifier', () => gauss(config.vocabSize * config.dim));
  lazy(weights, 'rmsFinal', () => new Float32Array(config.dim).fill(1));
  return { weights: weights as unknown as LoadedBase['weights'], sha256: `random-${seed}`, source: `random(seed ${seed})` };
}

/** Write a partner model as GGUF at `path` (K-quants in the encoder's fast mode). */
export function writePartnerGguf(model: PartnerModel, file: PartnerFileType, path: string, seed = 1): void {
  const v = syntheticVocabulary(model.config.vocabSize);
  const c = model.config;
  const rowOf = (name: string): number => {
    if (/attn_output/.test(name)) return qDim(c);
    if (/ffn_down/.test(name)) return c.hiddenDim;
    return c.dim;
  };
  const input = ggufModelInput(lazyRandomBase(c, seed), {
    name: model.name,
    fastKQuants: true,
    typeOf: (name) => partnerTensorType(file, name, rowOf(name)),
    tokenizer: bpeTokenizerEntries({ tokens: v.tokens, merges: v.merges, tokenTypes: v.tokenTypes, pre: model.pre, bosId: v.endOfText, eosId: v.imEnd, addBos: false }),
  });
  writeGguf(path, input);
}
