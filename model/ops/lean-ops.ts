/**
 * Element-wise pieces of the Llama block as single differentiable ops that save less for
 * backprop than tfjs's op-by-op chain (which keeps every intermediate a later gradient reads):
 * - {@link swiglu}: silu(a)·b keeps a and b only (the chain also keeps σ(a) and a·σ(a));
 * - {@link rotaryMix}: x·cos + (x R)·sin keeps nothing (it is linear in x; the chain keeps x and
 *   x R).
 * Forward values are computed with the same kernels in the same order as the chains they replace,
 * so they are identical; gradients agree to float32 rounding. Without a gradient tape (inference)
 * each is the plain chain. Call inside tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';
import { gradientSkippable } from './lean-grads.js';

/** True while a gradient tape records (inside tf.grad / variableGrads): only then do the wrappers matter. */
function taping(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

type Body = (...args: unknown[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
const grad = (f: Body): ((...xs: tf.Tensor[]) => tf.Tensor) => tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: tf.Tensor[]) => tf.Tensor;

const swigluOp = grad((a, b, save) => {
  const [x, y] = [a as tf.Tensor, b as tf.Tensor];
  (save as tf.GradSaveFunc)([x, y]);
  return {
    value: tf.mul(tf.mul(x, tf.sigmoid(x)), y),
    // d/da silu(a)·b = b·σ(a)·(1 + a·(1 − σ(a))), d/db = silu(a)
    gradFunc: (dy, [sa, sb]) => {
      const s = tf.sigmoid(sa);
      const da = tf.mul(tf.mul(dy, sb), tf.mul(s, tf.add(1, tf.mul(sa, tf.sub(1, s)))));
      return [da, tf.mul(dy, tf.mul(sa, s))];
    },
  };
});

/** silu(a)·b = a·σ(a)·b for a and b of the same shape (SwiGLU), saving only a and b for backprop. */
export function swiglu<T extends tf.Tensor>(a: T, b: T): T {
  if (!(a instanceof tf.Tensor) || !(b instanceof tf.Tensor)) throw new TypeError('swiglu: a and b must be tensors');
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new RangeError(`swiglu: a is [${a.shape}] but b is [${b.shape}]`);
  return (taping() ? swigluOp(a, b) : tf.mul(tf.mul(a, tf.sigmoid(a)), b)) as T;
}

/**
 * x·cos + (x R)·sin for x [..., hs], with R the [hs, hs] matrix `rT` (row-major, applied as
 * x @ rT) and cos/sin broadcast against x (`tableShape`). Linear in x, so nothing is saved: the
 * gradient dy·cos + (dy·sin) @ rTᵀ is rebuilt from the arrays given.
 */
export function rotaryMix(x: tf.Tensor, cos: Float32Array, sin: Float32Array, tableShape: number[], rT: Float32Array): tf.Tensor {
  const hs = x.shape[x.rank - 1];
  if (rT.length !== hs * hs) throw new RangeError(`rotaryMix: rT has ${rT.length} values, expected ${hs * hs}`);
  if (cos.length !== sin.length || cos.length !== tableShape.reduce((p, d) => p * d, 1)) throw new RangeError(`rotaryMix: cos/sin do not fit the table shape [${tableShape}]`);
  const rows = x.size / hs;
  const mix = (v: tf.Tensor, r: Float32Array, c: Float32Array, s: Float32Array): tf.Tensor => {
    const rotated = tf.reshape(tf.matMul(tf.reshape(v, [rows, hs]) as tf.Tensor2D, tf.tensor2d(r, [hs, hs])), v.shape);
    return tf.add(tf.mul(v, tf.tensor(c, tableShape)), tf.mul(rotated, tf.tensor(s, tableShape)));
  };
  const op = grad((xx, save) => {
    (save as tf.GradSaveFunc)([]);
    return {
      value: mix(xx as tf.Tensor, rT, cos, sin),
      // (dy·sin) @ rTᵀ, and rTᵀ = −rT for a rotation by a quarter turn; written generally
      gradFunc: (dy) => {
        const r = new Float32Array(hs * hs);
        for (let i = 0; i < hs; i++) for (let j = 0; j < hs; j++) r[j * hs + i] = rT[i * hs + j];
        const rotated = tf.reshape(tf.matMul(tf.reshape(tf.mul(dy, tf.tensor(sin, tableShape)), [rows, hs]) as tf.Tensor2D, tf.tensor2d(r, [hs, hs])), dy.shape);
        return tf.add(tf.mul(dy, tf.tensor(cos, tableShape)), rotated);
      },
    };
  });
  return taping() ? op(x) : mix(x, rT, cos, sin);
}

/** Axes of `full` summed to reduce a gradient of shape `full` to the broadcast input `shape`. */
function sumTo(dy: tf.Tensor, shape: readonly number[]): tf.Tensor {
  const lead = dy.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) if (i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  return tf.reshape(axes.length ? tf.sum(dy, axes) : dy, [...shape]);
}

/**
 * a + b (broadcasting as tf.add), saving nothing: tfjs's Add keeps both inputs alive until
 * backprop only to read their shapes.
 */
export function plus<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  if (!taping()) return tf.add(a, b) as T;
  const [sa, sb] = [[...a.shape], [...b.shape]];
  const op = grad((x, y, save) => {
    (save as tf.GradSaveFunc)([]);
    return { value: tf.add(x as tf.Tensor, y as tf.Tensor), gradFunc: (dy) => [sumTo(dy, sa), sumTo(dy, sb)] };
  });
  return op(a, b) as T;
}

/** x reshaped, saving nothing (tfjs's Reshape keeps its input alive until backprop for its shape). */
export function view<R extends tf.Rank>(x: tf.Tensor, shape: number[]): tf.Tensor<R> {
  if (!taping()) return tf.reshape<tf.Rank>(x, shape) as tf.Tensor<R>;
  const from = [...x.shape];
  const op = grad((v, save) => {
    (save as tf.GradSaveFunc)([]);
    return { value: tf.reshape(v as tf.Tensor, shape), gradFunc: (dy) => tf.reshape(dy, from) };
  });
  return op(x) as tf.Tensor<R>;
}

/** x · c for a constant c, saving nothing (tfjs's Mul keeps x and c alive until backprop). */
export function scaled<T extends tf.Tensor>(x: T, c: number): T {
  if (!Number.isFinite(c)) throw new RangeError(`scaled: c must be finite, got ${c}`);
  if (!taping()) return tf.mul(x, c) as T;
  const op = grad((v, save) => {
    (save as tf.GradSaveFunc)([]);
    return { value: tf.mul(v as tf.Tensor, c), gradFunc: (dy) => tf.mul(dy, c) };
  });
  return op(x) as T;
}

/**
 * RMSNorm over the last axis, x / √(mean(x²) + eps) · w, saving only x and w for backprop. The
 * gradient of w (a column sum over every row) is skipped, as zeros, when leanVariableGrads says
 * nothing reads it (a frozen base's norm weight: see gradientSkippable).
 */
export function leanRmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D, eps: number): T {
  if (x.shape[x.rank - 1] !== w.size) throw new RangeError(`leanRmsNorm: x is [${x.shape}] but w has ${w.size} values`);
  if (!taping()) return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w) as T;
  let y: tf.Tensor | undefined;
  const op = grad((a, b, save) => {
    const [xx, ww] = [a as tf.Tensor, b as tf.Tensor];
    (save as tf.GradSaveFunc)([xx, ww]);
    return {
      value: tf.mul(tf.mul(xx, tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), eps))), ww),
      // y = x·r·w, r = (mean(x²) + eps)^(−1/2): dx = r·g − x·r³·mean(x·g) with g = dy·w; dw = Σ dy·x·r
      gradFunc: (dy, [sx, sw]) => {
        const r = tf.rsqrt(tf.add(tf.mean(tf.square(sx), -1, true), eps));
        const g = tf.mul(dy, sw);
        const dx = tf.sub(tf.mul(g, r), tf.mul(tf.mul(sx, tf.pow(r, 3)), tf.mean(tf.mul(sx, g), -1, true)));
        return [dx, y && gradientSkippable(w, y) ? tf.zerosLike(sw) : sumTo(tf.mul(dy, tf.mul(sx, r)), [sw.size])];
      },
    };
  });
  y = op(x, w);
  return y as T;
}
