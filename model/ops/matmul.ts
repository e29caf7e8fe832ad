/**
 * Matrix products whose gradients avoid the wasm backend's slow transposed-matMul path.
 *
 * tfjs's stock matMul gradient calls matMul with transposeA/transposeB, which the wasm
 * backend runs as a naive loop 10–40× slower than its XNNPACK plain matMul. Here every
 * product, forward and backward, is a plain (non-transposed) matMul, with explicit
 * `tf.transpose` (a cheap memory copy) where the math needs one — except when the native products
 * are installed (native-kernels.ts), which read transposed operands directly: then the transposed
 * products go to the kernel as they are.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeKernelsActive } from './native-kernels.js';

type GradFn = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
type Op = (...inputs: tf.Tensor[]) => tf.Tensor;

/**
 * tf.customGrad with a typed signature. The inputs are saved for backprop (tfjs keeps clones of
 * them), so `gradFunc` receives them in `saved`; tensors merely closed over may be gone by then.
 */
function custom(f: (...inputs: tf.Tensor[]) => { value: tf.Tensor; gradFunc: GradFn }): Op {
  const withSave = (...args: unknown[]) => {
    const save = args.pop() as (ts: tf.Tensor[]) => void;
    const inputs = args as tf.Tensor[];
    save(inputs);
    return f(...inputs);
  };
  return tf.customGrad(withSave as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as Op;
}

const tr2 = (x: tf.Tensor): tf.Tensor2D => tf.transpose(x) as tf.Tensor2D;

/**
 * Whether transposed products can go to the kernel as they are: the native products
 * (native-kernels.ts) read either operand transposed at full speed, so no transpose copy is made.
 */
export function transposedProductsDirect(): boolean {
  return nativeKernelsActive() && tf.getBackend() === 'wasm';
}

/** a @ bᵀ (a [m, k], b [c, k]) as plain matMuls, transposing whichever side is smaller. */
function mmNT(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (transposedProductsDirect()) return tf.matMul(a, b, false, true);
  const [m, k] = a.shape;
  const c = b.shape[0];
  return c * k <= m * k + m * c ? tf.matMul(a, tr2(b)) : tr2(tf.matMul(b, tr2(a)));
}

/** aᵀ @ b (a [k, m], b [k, c]) as plain matMuls, transposing whichever side is smaller. */
function mmTN(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (transposedProductsDirect()) return tf.matMul(a, b, true, false);
  const [k, m] = a.shape;
  const c = b.shape[1];
  return k * m <= k * c + m * c ? tf.matMul(tr2(a), b) : tr2(tf.matMul(tr2(b), a));
}

const matMul2d = custom((a: tf.Tensor, b: tf.Tensor) => ({
  value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  gradFunc: (dy, [sa, sb]) => [mmNT(dy as tf.Tensor2D, sb as tf.Tensor2D), mmTN(sa as tf.Tensor2D, dy as tf.Tensor2D)],
}));

/** `a @ b` for 2-D tensors, differentiable in both, with transpose-free gradient kernels. */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (a.rank !== 2 || b.rank !== 2) throw new RangeError(`matMul: a and b must be rank 2, got ${a.rank} and ${b.rank}`);
  if (a.shape[1] !== b.shape[0]) throw new RangeError(`matMul: inner dimensions differ, a is [${a.shape}] and b is [${b.shape}]`);
  return (mode === 'stock' ? tf.matMul(a, b) : matMul2d(a, b)) as tf.Tensor2D;
}

/**
 * `x @ wT` where the frozen weight `wT` ([in, out]) is produced on demand by `wT()` inside the
 * op, so a quantized base's dequantized copy is freed as soon as the product is taken; the
 * gradient flows to `x` only, as `dy @ w`, with `w` ([out, in]) produced again by `w()` during
 * backprop. Neither supplier may return a tensor made earlier in the forward pass (tfjs disposes
 * those before backprop); returning a long-lived tensor (kept outside any tidy) is fine.
 */
export function frozenMatMul(x: tf.Tensor2D, wT: () => tf.Tensor2D, w: () => tf.Tensor2D): tf.Tensor2D {
  if (mode === 'stock') return tf.matMul(x, wT());
  // nothing saved: dx = dy @ w needs only the weight, made again; keeping x would hold every
  // frozen product's input (e.g. the [n, hidden] FFN activation) until backprop for nothing
  const f = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    const weight = wT();
    if (xx.shape[1] !== weight.shape[0]) throw new RangeError(`frozenMatMul: x is [${xx.shape}] but the weight is [${weight.shape}]`);
    return {
      value: tf.matMul(xx as tf.Tensor2D, weight),
      // tidy: tfjs runs the whole backprop in one scope, so without it every layer's dequantized
      // weight would live until the last gradient is taken
      gradFunc: (dy: tf.Tensor) => [tf.tidy(() => tf.matMul(dy as tf.Tensor2D, w()))],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor2D;
}

/**
 * `x @ wᵀ` for a frozen weight `w` ([out, in]) produced on demand by `w()`, as {@link frozenMatMul}
 * (nothing saved; the gradient, `dy @ w`, flows to x only and makes the weight again) but without
 * a transposed copy of the weight: the product reads it transposed. Use when
 * {@link transposedProductsDirect}; elsewhere it equals frozenMatMul(x, () => w()ᵀ, w).
 */
export function frozenMatMulNT(x: tf.Tensor2D, w: () => tf.Tensor2D): tf.Tensor2D {
  if (!transposedProductsDirect() || mode === 'stock') return frozenMatMul(x, () => tf.transpose(w()), w);
  const f = tf.customGrad(((xx: tf.Tensor, save: tf.GradSaveFunc) => {
    save([]);
    const weight = w();
    if (xx.shape[1] !== weight.shape[1]) throw new RangeError(`frozenMatMulNT: x is [${xx.shape}] but the weight is [${weight.shape}]`);
    return {
      value: tf.matMul(xx as tf.Tensor2D, weight, false, true),
      gradFunc: (dy: tf.Tensor) => [tf.tidy(() => tf.matMul(dy as tf.Tensor2D, w()))],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor2D;
}

/** Which kernels the ops use: `fast` (the workarounds here) or `stock` (tfjs as shipped, for benchmarks). */
export type KernelMode = 'fast' | 'stock';
let mode: KernelMode = 'fast';

/** Switch every op in this module to stock tfjs kernels (`stock`) or the workarounds (`fast`, default). */
export function setKernelMode(m: KernelMode): void {
  if (m !== 'fast' && m !== 'stock') throw new RangeError(`setKernelMode: mode must be "fast" or "stock", got "${m}"`);
  mode = m;
}

/** The current {@link KernelMode}. */
export function kernelMode(): KernelMode {
  return mode;
}

const tr3 = (x: tf.Tensor): tf.Tensor3D => tf.transpose(x, [0, 2, 1]) as tf.Tensor3D;

/**
 * Plain batched product. The wasm kernel is fast only for batch 1, so on wasm large batched
 * products run as one 2-D matMul per batch entry (split/concat are cheap with the kernels of
 * wasm-kernels.ts); tiny ones (generation) stay in one batched call.
 */
function bmmPlain(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [n, m, k] = a.shape;
  const cols = b.shape[2];
  // the native kernel (native-kernels.ts) runs whole batches fast: splitting would only copy
  if (n === 1 || tf.getBackend() !== 'wasm' || nativeKernelsActive() || m * k * cols < PER_SLICE_MIN_FLOPS) return tf.matMul(a, b);
  const as = tf.split(a, n, 0);
  const bs = tf.split(b, n, 0);
  return tf.concat(as.map((x, i) => tf.matMul(x as tf.Tensor3D, bs[i] as tf.Tensor3D)), 0);
}
const PER_SLICE_MIN_FLOPS = 4096;

/** a @ bᵀ for a [n, m, k], b [n, c, k] without a transposed kernel: transposes the smaller side. */
function bmmNT(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (transposedProductsDirect()) return tf.matMul(a, b, false, true);
  const [, m] = a.shape;
  const [, c, k] = b.shape;
  // either a @ (bᵀ)  — transposing b (c·k) — or (b @ aᵀ)ᵀ — transposing a (m·k) and the result (c·m)
  return c * k <= m * k + c * m ? bmmPlain(a, tr3(b)) : tr3(bmmPlain(b, tr3(a)));
}

/** aᵀ @ b for a [n, k, m], b [n, k, c]: transposes the smaller side. */
function bmmTN(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (transposedProductsDirect()) return tf.matMul(a, b, true, false);
  const [, k, m] = a.shape;
  const c = b.shape[2];
  return k * m <= k * c + m * c ? bmmPlain(tr3(a), b) : tr3(bmmPlain(tr3(b), a));
}

const batched = custom((a: tf.Tensor, b: tf.Tensor) => ({
  value: bmmPlain(a as tf.Tensor3D, b as tf.Tensor3D),
  gradFunc: (dy, [sa, sb]) => [bmmNT(dy as tf.Tensor3D, sb as tf.Tensor3D), bmmTN(sa as tf.Tensor3D, dy as tf.Tensor3D)],
}));

/** Batched `a @ b` for [batch, m, k] × [batch, k, n], with transpose-free gradient kernels. */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (a.rank !== 3 || b.rank !== 3) throw new RangeError(`batchMatMul: a and b must be rank 3, got ${a.rank} and ${b.rank}`);
  if (a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) throw new RangeError(`batchMatMul: shapes [${a.shape}] and [${b.shape}] do not chain`);
  return (mode === 'stock' ? tf.matMul(a, b) : batched(a, b)) as tf.Tensor3D;
}

/** A variable initialised from `init`, which is disposed (tf.variable keeps its own reference). */
export function variableFrom<R extends tf.Rank>(init: tf.Tensor<R>, trainable: boolean, name?: string): tf.Variable<R> {
  const v = tf.variable(init, trainable, name);
  init.dispose();
  return v;
}
