/**
 * Merging an adapter into float32 base weights (W ← W + (alpha/r)·B A) and taking it out again
 * (W ← W − (alpha/r)·B A). Works on plain arrays, so the merged model can be saved as an
 * ordinary checkpoint and served without LoRA.
 */
import type { LoraAdapter } from './lora.js';
import { matrixShape, type LayerWeights, type LlamaWeights } from './weights.js';

/**
 * W + s·B·A for one matrix W [out, in] (row-major), B [out, r], A [r, in]: a new array. The one
 * place an adapter is folded into weights (merge, unmerge, merged export).
 */
export function addLowRank(w: Float32Array, b: Float32Array, a: Float32Array, out: number, inp: number, r: number, s: number): Float32Array {
  const res = Float32Array.from(w);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += b[o * r + k] * a[k * inp + i];
      res[o * inp + i] += s * acc;
    }
  }
  return res;
}

function apply(weights: LlamaWeights, adapter: LoraAdapter, sign: 1 | -1): LlamaWeights {
  const c = weights.config;
  if (JSON.stringify(c) !== JSON.stringify(adapter.baseConfig)) throw new RangeError('mergeAdapter: the adapter was made for a different architecture');
  const layers = weights.layers.map((l) => ({ ...l })) as { -readonly [K in keyof LayerWeights]: LayerWeights[K] }[];
  const r = adapter.config.rank;
  const s = sign * adapter.scale;
  const tensors = new Map(adapter.toTensors().map((t) => [t.name, t.data]));
  for (const { layer, name } of adapter.list()) {
    const a = tensors.get(`layers.${layer}.${name}.lora_A`)!; // [r, in]
    const b = tensors.get(`layers.${layer}.${name}.lora_B`)!; // [out, r]
    const [out, inp] = matrixShape(c, name);
    layers[layer][name] = addLowRank(layers[layer][name], b, a, out, inp, r, s);
  }
  return { ...weights, layers };
}

/** New weights with the adapter merged in; the input is not modified. */
export function mergeAdapter(weights: LlamaWeights, adapter: LoraAdapter): LlamaWeights {
  return apply(weights, adapter, 1);
}

/** New weights with the adapter's contribution subtracted (the inverse of {@link mergeAdapter}). */
export function unmergeAdapter(weights: LlamaWeights, adapter: LoraAdapter): LlamaWeights {
  return apply(weights, adapter, -1);
}
