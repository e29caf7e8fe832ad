/**
 * Randomly initialised Llama weights for benchmarks and tests of scale (timing and memory do
 * not depend on weight values). Normal(0, 0.02) matrices, unit norms, seeded.
 */
import { createHash } from 'node:crypto';
import { headSize, kvDim, qDim, validateConfig, type LlamaConfig } from './config.js';
import type { LoadedBase } from './checkpoint.js';
import { nextGaussian, seededRng } from '../random/rng.js';
import { MATRIX_NAMES, matrixShape, type LayerWeights } from './weights.js';

/** Options of {@link randomBase}. */
export interface RandomBaseOptions {
  /** Standard deviation of matrix and embedding entries (default 0.02). */
  readonly std?: number;
  /** Standard deviation of the token embedding and output head (default: `std`). */
  readonly headStd?: number;
  /**
   * Draw norm weights as 1 + 0.2·N(0,1) and biases as 0.2·N(0,1) instead of ones and zeros, so
   * that a test tells each vector apart (default false).
   */
  readonly randomVectors?: boolean;
}

/** A random base of the given architecture (its sha256 is of the config, seed and options). */
export function randomBase(config: LlamaConfig, seed = 0, options: RandomBaseOptions = {}): LoadedBase {
  validateConfig(config, 'randomBase');
  const rng = seededRng(seed);
  const std = options.std ?? 0.02;
  const gauss = (n: number, s: number, mean = 0): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = mean + s * nextGaussian(rng);
    return a;
  };
  const normal = (n: number): Float32Array => gauss(n, std);
  const ones = (n: number): Float32Array => (options.randomVectors ? gauss(n, 0.2, 1) : new Float32Array(n).fill(1));
  const bias = (n: number): Float32Array => (options.randomVectors ? gauss(n, 0.2) : new Float32Array(n));
  const hs = headSize(config);
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, () => {
    const m = Object.fromEntries(MATRIX_NAMES.map((name) => {
      const [o, i] = matrixShape(config, name);
      return [name, normal(o * i)];
    }));
    const extra = {
      ...(config.attnBias ? { bq: bias(qDim(config)), bk: bias(kvDim(config)), bv: bias(kvDim(config)) } : {}),
      ...(config.qkNorm ? { qNorm: ones(hs), kNorm: ones(hs) } : {}),
    };
    return { rmsAtt: ones(config.dim), rmsFfn: ones(config.dim), ...m, ...extra } as unknown as LayerWeights;
  });
  const headStd = options.headStd ?? std;
  const tokenEmbedding = gauss(config.vocabSize * config.dim, headStd);
  const sha256 = createHash('sha256').update(JSON.stringify(options.std === undefined && options.headStd === undefined && !options.randomVectors ? { config, seed, kv: kvDim(config) } : { config, seed, kv: kvDim(config), options })).digest('hex');
  return {
    weights: { config, tokenEmbedding, layers, rmsFinal: ones(config.dim), classifier: config.sharedClassifier ? tokenEmbedding : gauss(config.vocabSize * config.dim, headStd) },
    sha256,
    source: `random(seed ${seed})`,
  };
}
