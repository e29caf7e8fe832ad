/**
 * Randomly initialised Llama weights for benchmarks and tests of scale (timing and memory do
 * not depend on weight values). Normal(0, 0.02) matrices, unit norms, seeded.
 */
import { createHash } from 'node:crypto';
import { kvDim, validateConfig, type LlamaConfig } from './config.js';
import type { LoadedBase } from './checkpoint.js';
import { nextGaussian, seededRng } from '../random/rng.js';
import { MATRIX_NAMES, matrixShape, type LayerWeights } from './weights.js';

/** A random base of the given architecture (its sha256 is of the config and seed). */
export function randomBase(config: LlamaConfig, seed = 0): LoadedBase {
  validateConfig(config, 'randomBase');
  const rng = seededRng(seed);
  const normal = (n: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = 0.02 * nextGaussian(rng);
    return a;
  };
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const layers: LayerWeights[] = Array.from({ length: config.nLayers }, () => {
    const m = Object.fromEntries(MATRIX_NAMES.map((name) => {
      const [o, i] = matrixShape(config, name);
      return [name, normal(o * i)];
    }));
    return { rmsAtt: ones(config.dim), rmsFfn: ones(config.dim), ...m } as unknown as LayerWeights;
  });
  const tokenEmbedding = normal(config.vocabSize * config.dim);
  const sha256 = createHash('sha256').update(JSON.stringify({ config, seed, kv: kvDim(config) })).digest('hex');
  return {
    weights: { config, tokenEmbedding, layers, rmsFinal: ones(config.dim), classifier: config.sharedClassifier ? tokenEmbedding : normal(config.vocabSize * config.dim) },
    sha256,
    source: `random(seed ${seed})`,
  };
}
