/**
 * Matrix products whose gradients avoid the wasm backend's slow transposed-matMul path.
 *
 * tfjs's stock matMul gradient calls matMul with transposeA/transposeB, which the wasm
 * backend runs as a naive loop 10–40× slower than its XNNPACK plain matMul. Here every
 * product, forward and backward, is a plain (non-transposed) matMul, with explicit
 * `tf.transpose` (a cheap memory copy) where the math needs one.
 */
import * as tf from '@tensorflow/tfjs';

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

const matMul2d = custom((a: tf.Tensor, b: tf.Tensor) => ({
  value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
  gradFunc: (dy, [sa, sb]) => [tf.matMul(dy as tf.Tensor2D, tf.transpose(sb)), tf.matMul(tf.transpose(sa), dy as tf.Tensor2D)],
}));

/** `a @ b` for 2-D tensors, differentiable in both, with transpose-free gradient kernels. */
export function matMul(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (a.rank !== 2 || b.rank !== 2) throw new RangeError(`matMul: a and b must be rank 2, got ${a.rank} and ${b.rank}`);
  if (a.shape[1] !== b.shape[0]) throw new RangeError(`matMul: inner dimensions differ, a is [${a.shape}] and b is [${b.shape}]`);
  return matMul2d(a, b) as tf.Tensor2D;
}

/**
 * `x @ wT` where `wT` ([in, out]) is frozen: the gradient flows to `x` only, as `dy @ w`, with
 * `w` ([out, in]) produced on demand by `w()` during backprop (a quantized base dequantizes it
 * again rather than holding it). `w()` must not return a tensor made during the forward pass:
 * tfjs disposes those before backprop.
 */
export function frozenMatMul(x: tf.Tensor2D, wT: tf.Tensor2D, w: () => tf.Tensor2D): tf.Tensor2D {
  if (x.shape[1] !== wT.shape[0]) throw new RangeError(`frozenMatMul: x is [${x.shape}] but the weight is [${wT.shape}]`);
  const f = custom((xx: tf.Tensor) => ({
    value: tf.matMul(xx as tf.Tensor2D, wT),
    gradFunc: (dy: tf.Tensor) => [tf.matMul(dy as tf.Tensor2D, w())],
  }));
  return f(x) as tf.Tensor2D;
}

const batched = custom((a: tf.Tensor, b: tf.Tensor) => ({
  value: tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D),
  gradFunc: (dy, [sa, sb]) => [
    tf.matMul(dy as tf.Tensor3D, tf.transpose(sb, [0, 2, 1])),
    tf.matMul(tf.transpose(sa, [0, 2, 1]), dy as tf.Tensor3D),
  ],
}));

/** Batched `a @ b` for [batch, m, k] × [batch, k, n], with transpose-free gradient kernels. */
export function batchMatMul(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (a.rank !== 3 || b.rank !== 3) throw new RangeError(`batchMatMul: a and b must be rank 3, got ${a.rank} and ${b.rank}`);
  if (a.shape[0] !== b.shape[0] || a.shape[2] !== b.shape[1]) throw new RangeError(`batchMatMul: shapes [${a.shape}] and [${b.shape}] do not chain`);
  return batched(a, b) as tf.Tensor3D;
}

/** A variable initialised from `init`, which is disposed (tf.variable keeps its own reference). */
export function variableFrom<R extends tf.Rank>(init: tf.Tensor<R>, trainable: boolean, name?: string): tf.Variable<R> {
  const v = tf.variable(init, trainable, name);
  init.dispose();
  return v;
}
