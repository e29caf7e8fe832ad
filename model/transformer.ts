/**
 * The Llama forward pass over a batch of token sequences: RMSNorm, RoPE, grouped-query causal
 * attention, SwiGLU, output head, with LoRA on any block matrix and an optional KV cache for
 * incremental generation. One code path serves training, evaluation and generation.
 */
import * as tf from '@tensorflow/tfjs';
import { headSize, qDim } from './config.js';
import type { FrozenBase, MatrixRef } from './frozen-base.js';
import type { LoraAdapter } from './lora.js';
import { batchMatMul, kernelMode, matMul } from './ops/matmul.js';
import { leanRmsNorm, plus, scaled, swiglu, view } from './ops/lean-ops.js';
import { fusedAttentionAvailable, fusedCausalAttention } from './ops/native-attention.js';
import { fusedNll, fusedRmsNorm, fusedRowwiseAvailable, fusedSwiglu } from './ops/native-rowwise.js';
import { applyRope, ropeTables, rotationT, type RopeSpec } from './rope.js';
import type { Rng } from '../random/rng.js';
import type { MatrixName } from './weights.js';

/** Keys and values of earlier positions, per layer: [B, S, nKvHeads, headSize] (after RoPE). */
export interface KvCache {
  readonly layers: readonly { readonly k: tf.Tensor4D; readonly v: tf.Tensor4D }[];
  /** Positions already cached (S). */
  readonly length: number;
}

/** Options of {@link forward}. */
export interface ForwardOptions {
  readonly adapter?: LoraAdapter;
  /** Training mode: apply the adapter's dropout, drawing masks from this RNG. */
  readonly dropoutRng?: Rng;
  /** Earlier positions; the new tokens start at position cache.length. */
  readonly cache?: KvCache;
  /** Return the updated cache (its tensors are new; the caller keeps and disposes them). */
  readonly returnCache?: boolean;
  /** Observe the input of every frozen matrix product (for calibration); `x` is [B·T, in]. */
  readonly onMatrixInput?: (ref: MatrixRef, x: tf.Tensor2D) => void;
  /**
   * Gradient checkpointing (training): each layer keeps only its input for backprop and runs
   * again inside the backward pass, so one layer's activations exist at a time instead of all
   * of them, for about one more forward pass of compute. Not with `cache` / `returnCache` /
   * `onMatrixInput`. Default false.
   */
  readonly checkpoint?: boolean;
  /**
   * Instead of `adapter`: the low-rank term added to the frozen product of a block matrix, given
   * the product's input x [B·T, in] (undefined: no adapter on that matrix). For adapters that are
   * not one {@link LoraAdapter}, e.g. several devices' adapters stacked along the batch
   * (model/cohort-trainer.ts). Not with `adapter`, `checkpoint` or `onMatrixInput`.
   */
  readonly loraTerm?: (x: tf.Tensor2D, layer: number, name: MatrixName) => tf.Tensor2D | undefined;
}

/** What {@link forward} returns. */
export interface ForwardResult {
  /** [B·T, vocab] */
  readonly logits: tf.Tensor2D;
  readonly cache?: KvCache;
}

/** RMSNorm over the last axis: x / √(mean(x²) + eps) · w. */
export function rmsNorm(x: tf.Tensor2D, w: tf.Tensor1D, eps: number): tf.Tensor2D {
  // fast mode: one op keeping x and w for backprop (the chain keeps x twice, x², x·r)
  if (kernelMode() === 'fast') return fusedRowwiseAvailable() ? fusedRmsNorm(x, w, eps) : leanRmsNorm(x, w, eps);
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, eps))), w);
}

/** RMSNorm of each head of x [B, T, H, hs] over its hs values (Qwen3's q/k norm). */
function headRmsNorm(x: tf.Tensor4D, w: tf.Tensor1D, eps: number): tf.Tensor4D {
  const [B, T, H, hs] = x.shape;
  return view(rmsNorm(view(x, [B * T * H, hs]), w, eps), [B, T, H, hs]);
}

/** A dropout mask of n values: 0 with probability `rate`, else 1 / (1 − rate), drawn in order from `rng`. */
export function dropoutMask(rng: Rng, n: number, rate: number): Float32Array {
  const m = new Float32Array(n);
  const keep = 1 / (1 - rate);
  for (let i = 0; i < n; i++) m[i] = rng.nextFloat() >= rate ? keep : 0;
  return m;
}

/**
 * Run the model on `tokens` (row-major [batch, T]) and return logits for every position.
 * Call inside tf.tidy (or tf.variableGrads) — intermediates are not disposed here.
 */
export function forward(base: FrozenBase, tokens: Int32Array, batch: number, opts: ForwardOptions = {}): ForwardResult {
  const { hidden, cache } = forwardHidden(base, tokens, batch, opts);
  opts.onMatrixInput?.('classifier', hidden);
  return { logits: base.logits(hidden), cache };
}

/** What {@link forwardHidden} returns. */
export interface HiddenResult {
  /** The final-normed hidden states [B·T, dim] the output head multiplies. */
  readonly hidden: tf.Tensor2D;
  readonly cache?: KvCache;
}

/**
 * The forward pass up to (not including) the output head: training on a large vocabulary takes
 * the loss from these hidden states chunk by chunk (head-loss.ts) instead of full logits.
 * Call inside tf.tidy (or tf.variableGrads).
 */
export function forwardHidden(base: FrozenBase, tokens: Int32Array, batch: number, opts: ForwardOptions = {}): HiddenResult {
  const c = base.config;
  if (!Number.isInteger(batch) || batch <= 0 || tokens.length % batch !== 0) {
    throw new RangeError(`forward: batch ${batch} does not divide ${tokens.length} tokens`);
  }
  const T = tokens.length / batch;
  const start = opts.cache?.length ?? 0;
  if (T === 0) throw new RangeError('forward: tokens must not be empty');
  if (start + T > c.seqLen) throw new RangeError(`forward: positions up to ${start + T} exceed the model's context of ${c.seqLen}`);
  if (opts.adapter && opts.adapter.baseSha256 !== base.sha256) {
    throw new RangeError(`forward: the adapter was made for base ${opts.adapter.baseSha256.slice(0, 12)}…, not this base ${base.sha256.slice(0, 12)}…`);
  }
  const hs = headSize(c);
  const kvH = c.nKvHeads;
  const rep = c.nHeads / kvH;
  const N = batch * T;
  const S = start + T;
  const adapter = opts.adapter;
  const dropRng = adapter && adapter.config.dropout > 0 ? opts.dropoutRng : undefined;

  const checkpoint = opts.checkpoint === true;
  const loraTerm = opts.loraTerm;
  if (loraTerm && (adapter || checkpoint || opts.onMatrixInput)) throw new RangeError('forward: opts.loraTerm does not go with adapter, checkpoint or onMatrixInput');
  if (checkpoint && (opts.cache || opts.returnCache || opts.onMatrixInput)) throw new RangeError('forward: opts.checkpoint does not go with cache, returnCache or onMatrixInput');
  // dropout masks drawn once per matrix, so a checkpointed layer's rerun in backprop sees the same
  const masks = new Map<string, Float32Array>();
  type Lora = (name: MatrixName) => { aT: tf.Tensor2D; bT: tf.Tensor2D } | undefined;
  const linear = (x: tf.Tensor2D, layer: number, name: MatrixName, lora: Lora): tf.Tensor2D => {
    opts.onMatrixInput?.({ layer, name }, x);
    const y = base.linear(x, { layer, name });
    if (loraTerm) {
      const term = loraTerm(x, layer, name);
      return term ? tf.add(y, term) : y;
    }
    const pair = lora(name);
    if (!pair) return y;
    let u = x;
    if (dropRng) {
      const key = `${layer}.${name}`;
      if (!masks.has(key)) masks.set(key, dropoutMask(dropRng, x.size, adapter!.config.dropout));
      u = tf.mul(x, tf.tensor2d(masks.get(key) as Float32Array, x.shape));
    }
    // the scale on the thin [n, r] side: backprop then keeps [n, r], not [n, out], for it
    return plus(y, matMul(scaled(matMul(u, pair.aT), adapter!.scale), pair.bT));
  };

  // causal mask [rep·T, S]: query t (position start+t) sees keys 0 … start+t
  // the fused native op (RoPE and causal mask inside) serves training and one-pass evaluation
  const fusedAttention = !opts.cache && kernelMode() === 'fast' && fusedAttentionAvailable();
  const fusedRope = fusedAttention && !opts.returnCache;
  const maskData = new Float32Array(fusedAttention ? 0 : rep * T * S);
  if (!fusedAttention) for (let r = 0; r < rep; r++) for (let t = 0; t < T; t++) for (let s = start + t + 1; s < S; s++) maskData[(r * T + t) * S + s] = -1e9;
  const sharedMask = checkpoint || fusedAttention ? undefined : tf.tensor2d(maskData, [rep * T, S]);
  const invSqrt = 1 / Math.sqrt(hs);
  const rope: RopeSpec = { theta: c.ropeTheta, style: c.ropeStyle, freqFactors: c.ropeFreqFactors };
  // a projection with its bias (Qwen2), split into heads, with its per-head norm (Qwen3)
  const heads = (xn: tf.Tensor2D, l: number, name: 'wq' | 'wk' | 'wv', nh: number, lora: Lora): tf.Tensor4D => {
    let y = linear(xn, l, name, lora);
    const bias = base.vector(l, name === 'wq' ? 'bq' : name === 'wk' ? 'bk' : 'bv');
    if (bias) y = plus(y, bias);
    const h = view<tf.Rank.R4>(y, [batch, T, nh, hs]);
    const norm = name === 'wv' ? undefined : base.vector(l, name === 'wq' ? 'qNorm' : 'kNorm');
    return norm ? headRmsNorm(h, norm, c.normEps) : h;
  };

  // one transformer block: x [N, dim] → x [N, dim], with this layer's k and v (after RoPE, cache included)
  const block = (x: tf.Tensor2D, l: number, lora: Lora): { x: tf.Tensor2D; k: tf.Tensor4D; v: tf.Tensor4D } => {
    const xn = rmsNorm(x, base.norm('att', l), c.normEps);
    if (fusedRope) {
      // RoPE, scores, mask, softmax and ·V in one native op each way (ops/native-attention.ts)
      const { cos, sin } = ropeTables(0, T, hs, rope);
      const qh = heads(xn, l, 'wq', c.nHeads, lora);
      const kh = heads(xn, l, 'wk', kvH, lora);
      const vh = heads(xn, l, 'wv', kvH, lora);
      const fused = view<tf.Rank.R2>(fusedCausalAttention(qh, kh, vh, invSqrt, { cos, sin, rT: rotationT(hs, c.ropeStyle ?? 'interleaved') }), [N, qDim(c)]);
      // (k before RoPE: only a returned cache reads k, and this path does not return one)
      return { x: feedForward(plus(x, linear(fused, l, 'wo', lora)), l, lora), k: kh, v: vh };
    }
    const q = applyRope(heads(xn, l, 'wq', c.nHeads, lora), start, rope);
    let k = applyRope(heads(xn, l, 'wk', kvH, lora), start, rope);
    let v = heads(xn, l, 'wv', kvH, lora);
    if (opts.cache) {
      const prev = opts.cache.layers[l];
      k = tf.concat([prev.k, k], 1);
      v = tf.concat([prev.v, v], 1);
    }
    if (fusedAttention) {
      // one native op each way, saving q, k, v and row log-sum-exps (ops/native-attention.ts)
      const fused = view<tf.Rank.R2>(fusedCausalAttention(q, k, v, invSqrt), [N, qDim(c)]);
      const xf = plus(x, linear(fused, l, 'wo', lora));
      return { x: feedForward(xf, l, lora), k, v };
    }
    // the mask is made here: a checkpointed rerun happens after the forward scope is gone
    const mask = sharedMask ?? tf.tensor2d(maskData, [rep * T, S]);
    // group the query heads that share a kv head: [B·kvH, rep·T, hs]
    // (view/plus/scaled: the same kernels as reshape/add/mul, without keeping inputs for backprop)
    const qg = view<tf.Rank.R3>(tf.transpose(view(q, [batch, T, kvH, rep, hs]), [0, 2, 3, 1, 4]), [batch * kvH, rep * T, hs]);
    const kT = view<tf.Rank.R3>(tf.transpose(k, [0, 2, 3, 1]), [batch * kvH, hs, S]);
    const vg = view<tf.Rank.R3>(tf.transpose(v, [0, 2, 1, 3]), [batch * kvH, S, hs]);
    // scaled on q ([.., hs]) rather than on the scores ([.., S]): backprop keeps no scores copy
    const scores = plus(batchMatMul(scaled(qg, invSqrt), kT), mask);
    const att = batchMatMul(tf.softmax(scores) as tf.Tensor3D, vg);
    const merged = view<tf.Rank.R2>(tf.transpose(view(att, [batch, kvH, rep, T, hs]), [0, 3, 1, 2, 4]), [N, qDim(c)]);
    const xa = plus(x, linear(merged, l, 'wo', lora));
    return { x: feedForward(xa, l, lora), k, v };
  };
  // SwiGLU feed-forward with its residual
  const feedForward = (xa: tf.Tensor2D, l: number, lora: Lora): tf.Tensor2D => {
    const hn = rmsNorm(xa, base.norm('ffn', l), c.normEps);
    const h1 = linear(hn, l, 'w1', lora);
    const h3 = linear(hn, l, 'w3', lora);
    const g = kernelMode() !== 'fast' ? (tf.mul(tf.mul(h1, tf.sigmoid(h1)), h3) as tf.Tensor2D) : fusedRowwiseAvailable() ? fusedSwiglu(h1, h3) : swiglu(h1, h3);
    return plus(xa, linear(g, l, 'w2', lora));
  };

  let x = base.embed(tokens);
  const newCache: { k: tf.Tensor4D; v: tf.Tensor4D }[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    if (checkpoint) {
      x = checkpointed(x, l, adapter, (xx, l2, lora) => block(xx, l2, lora).x);
      continue;
    }
    // each layer in its own scope: what its ops saved for backprop stays (tfjs keeps those
    // apart), the rest of its temporaries go now instead of at the end of the whole forward
    const xIn = x;
    const out = opts.onMatrixInput ? block(xIn, l, (name) => adapter?.get(l, name)) : tf.tidy(() => {
      const o = block(xIn, l, (name) => adapter?.get(l, name));
      return opts.returnCache ? o : { x: o.x };
    }) as { x: tf.Tensor2D; k?: tf.Tensor4D; v?: tf.Tensor4D };
    if (opts.returnCache) newCache.push({ k: out.k as tf.Tensor4D, v: out.v as tf.Tensor4D });
    x = out.x;
  }
  const hidden = rmsNorm(x, base.norm('final'), c.normEps);
  return { hidden, cache: opts.returnCache ? { layers: newCache, length: S } : undefined };
}

/**
 * Layer `l` as one differentiable op of x and the layer's LoRA tensors that saves only its inputs:
 * the forward runs in a tidy, and backprop reruns it under tf.grads with the upstream gradient.
 */
function checkpointed(
  x: tf.Tensor2D,
  l: number,
  adapter: LoraAdapter | undefined,
  run: (x: tf.Tensor2D, l: number, lora: (name: MatrixName) => { aT: tf.Tensor2D; bT: tf.Tensor2D } | undefined) => tf.Tensor2D,
): tf.Tensor2D {
  const pairs = adapter ? adapter.list().filter((p) => p.layer === l) : [];
  const call = (xx: tf.Tensor, ws: tf.Tensor[]): tf.Tensor2D => {
    const byName = new Map(pairs.map((p, i) => [p.name, { aT: ws[2 * i] as tf.Tensor2D, bT: ws[2 * i + 1] as tf.Tensor2D }]));
    return run(xx as tf.Tensor2D, l, (name) => byName.get(name));
  };
  const op = tf.customGrad(((...args: unknown[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    const inputs = args as tf.Tensor[];
    save(inputs);
    return {
      value: tf.tidy(() => call(inputs[0], inputs.slice(1))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // tf.grads at the top level starts a fresh tape and ends by dropping the engine's tape
        // (tfjs 4.22), which the enclosing backprop still has to clean up: put it back after
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outer = state.activeTape;
        try {
          return tf.grads((...a: tf.Tensor[]) => call(a[0], a.slice(1)))(saved, dy);
        } finally {
          state.activeTape = outer;
        }
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(x, ...pairs.flatMap((p) => [p.aT, p.bT])) as tf.Tensor2D;
}

/**
 * Mean next-token cross-entropy (nats) of logits [N, vocab] against targets [N]:
 * mean(logsumexp(row) − row[target]). The target logits are gathered (no [N, vocab] one-hot)
 * when the backend has the gather gradient's kernel, as fedtune's wasm kernels provide.
 * With `weights` [N] (≥ 0, e.g. a 0/1 loss mask), the weighted mean Σ wᵢ·nllᵢ / Σ wᵢ; all-zero
 * weights give 0 (and a zero gradient).
 */
export function crossEntropy(logits: tf.Tensor2D, targets: Int32Array, weights?: Float32Array): tf.Scalar {
  const [N, V] = logits.shape;
  if (targets.length !== N) throw new RangeError(`crossEntropy: ${targets.length} targets for ${N} logit rows`);
  for (let i = 0; i < N; i++) {
    if (!(targets[i] >= 0 && targets[i] < V)) throw new RangeError(`crossEntropy: target ${targets[i]} at ${i} is outside the vocabulary [0, ${V})`);
  }
  let total = N;
  if (weights !== undefined) {
    if (!(weights instanceof Float32Array)) throw new TypeError('crossEntropy: weights must be a Float32Array');
    if (weights.length !== N) throw new RangeError(`crossEntropy: ${weights.length} weights for ${N} logit rows`);
    total = 0;
    for (let i = 0; i < N; i++) {
      if (!(weights[i] >= 0 && Number.isFinite(weights[i]))) throw new RangeError(`crossEntropy: weight ${weights[i]} at ${i} is not a finite number ≥ 0`);
      total += weights[i];
    }
  }
  let nll: tf.Tensor;
  if (kernelMode() === 'fast' && fusedRowwiseAvailable()) {
    nll = fusedNll(logits, targets); // one native kernel each way (ops/native-rowwise.ts)
  } else {
    const lse = tf.logSumExp(logits, 1);
    let picked: tf.Tensor;
    if (tf.getKernel('UnsortedSegmentSum', tf.getBackend())) {
      picked = tf.gather(tf.reshape(logits, [N * V]), tf.tensor1d(Int32Array.from(targets, (t, i) => i * V + t), 'int32'));
    } else {
      picked = tf.sum(tf.mul(logits, tf.oneHot(tf.tensor1d(targets, 'int32'), V)), 1);
    }
    nll = tf.sub(lse, picked);
  }
  if (weights === undefined) return tf.div(tf.sum(nll), N) as tf.Scalar;
  return tf.div(tf.sum(tf.mul(nll, tf.tensor1d(weights))), total > 0 ? total : 1) as tf.Scalar;
}
