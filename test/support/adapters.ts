/**
 * Test helpers for adapter export: random non-zero adapters as plain data, and fedtune's own
 * next-token probabilities and greedy continuations with an adapter (the reference every
 * exported format is checked against).
 */
import * as tf from '@tensorflow/tfjs';
import {
  forward,
  LoraAdapter,
  loraConfig,
  nextGaussian,
  seededRng,
  matrixShape,
  type AdapterData,
  type FrozenBase,
  type LlamaConfig,
  type LoraConfig,
  type LoraTensor,
} from '../../model/index.js';

/** A random adapter (A and B Gaussian at `std`) for a base, as data. */
export function randomAdapterData(baseConfig: LlamaConfig, baseSha256: string, lora: Partial<LoraConfig>, seed: number, std = 0.1): AdapterData {
  const cfg = loraConfig(lora);
  const rng = seededRng(seed);
  const tensors: LoraTensor[] = [];
  const fill = (n: number): Float32Array => Float32Array.from({ length: n }, () => nextGaussian(rng) * std);
  for (let l = 0; l < baseConfig.nLayers; l++) {
    for (const name of cfg.targets) {
      const [out, inp] = matrixShape(baseConfig, name);
      tensors.push({ name: `layers.${l}.${name}.lora_A`, shape: [cfg.rank, inp], data: fill(cfg.rank * inp) });
      tensors.push({ name: `layers.${l}.${name}.lora_B`, shape: [out, cfg.rank], data: fill(out * cfg.rank) });
    }
  }
  return { baseSha256, lora: cfg, baseConfig, tensors };
}

/** The adapter data as a LoraAdapter on the base (TF.js variables; dispose it). */
export function adapterOf(data: AdapterData): LoraAdapter {
  return LoraAdapter.fromTensors(data.baseConfig, data.baseSha256, data.lora, data.tensors);
}

/** Softmax of fedtune's logits after the last of `ids`, with an optional adapter. */
export function probsAfter(base: FrozenBase, ids: readonly number[], adapter?: LoraAdapter): Float32Array {
  return tf.tidy(() => {
    const logits = forward(base, Int32Array.from(ids), 1, { adapter }).logits;
    return tf.softmax(logits.slice([ids.length - 1, 0], [1, -1])).dataSync() as Float32Array;
  });
}

/** fedtune's greedy continuation by `n` tokens, with the top-two margin at each step. */
export function greedy(base: FrozenBase, prompt: readonly number[], n: number, adapter?: LoraAdapter): { ids: number[]; margins: number[] } {
  const seq = [...prompt];
  const ids: number[] = [];
  const margins: number[] = [];
  for (let s = 0; s < n; s++) {
    const p = probsAfter(base, seq, adapter);
    let a = 0;
    for (let i = 1; i < p.length; i++) if (p[i] > p[a]) a = i;
    let b = a === 0 ? 1 : 0;
    for (let i = 0; i < p.length; i++) if (i !== a && p[i] > p[b]) b = i;
    ids.push(a);
    margins.push(p[a] - p[b]);
    seq.push(a);
  }
  return { ids, margins };
}

/** Largest absolute difference of two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxAbsDiff: lengths ${a.length} and ${b.length} differ`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The adapter with alpha multiplied by `k` (so its scale alpha / r is k times larger). */
export function scaledAdapter(data: AdapterData, k: number): AdapterData {
  return { ...data, lora: loraConfig({ ...data.lora, alpha: data.lora.alpha * k }) };
}
