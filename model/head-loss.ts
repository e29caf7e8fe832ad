/**
 * The next-token loss from the final hidden states, without full logits when the vocabulary is
 * large: the head is applied in chunks of vocabulary rows with an online log-sum-exp, and the
 * gradient (softmax − one-hot)·W is recomputed chunk by chunk in backprop. At any time only
 * [N, chunk] logits and [dim, chunk] head rows exist in float32 — for Qwen's 151,936-token
 * vocabulary at N = 256 that is 8 MiB instead of 148 MiB of logits (and their gradient), and the
 * head is never dequantized whole. Small problems take the plain path (identical results).
 */
import * as tf from '@tensorflow/tfjs';
import type { FrozenBase } from './frozen-base.js';
import { matMul } from './ops/matmul.js';
import { crossEntropy } from './transformer.js';

/** Vocabulary rows per chunk. */
export const HEAD_CHUNK = 8192;
/** Above this many logits (N · vocab) the loss is chunked. */
export const CHUNKED_LOSS_ABOVE = 1 << 22;

/** Options of {@link headLoss}. */
export interface HeadLossOptions {
  /** Vocabulary rows per chunk (default {@link HEAD_CHUNK}). */
  readonly chunk?: number;
  /** Force the chunked (true) or plain (false) path (default: chunked above {@link CHUNKED_LOSS_ABOVE} logits or above `chunk` vocabulary rows). */
  readonly chunked?: boolean;
}

function checkTargets(fn: string, targets: Int32Array, weights: Float32Array | undefined, N: number, V: number): number {
  if (targets.length !== N) throw new RangeError(`${fn}: ${targets.length} targets for ${N} rows`);
  for (let i = 0; i < N; i++) if (!(targets[i] >= 0 && targets[i] < V)) throw new RangeError(`${fn}: target ${targets[i]} at ${i} is outside the vocabulary [0, ${V})`);
  if (weights === undefined) return N;
  if (!(weights instanceof Float32Array) || weights.length !== N) throw new RangeError(`${fn}: weights must be a Float32Array of ${N} values`);
  let total = 0;
  for (let i = 0; i < N; i++) {
    if (!(weights[i] >= 0 && Number.isFinite(weights[i]))) throw new RangeError(`${fn}: weight ${weights[i]} at ${i} is not a finite number ≥ 0`);
    total += weights[i];
  }
  return total;
}

/**
 * Mean (or weighted mean) next-token cross-entropy of hidden states [N, dim] through the base's
 * output head against `targets`, differentiable in `hidden`. Call inside tf.tidy / variableGrads.
 */
export function headLoss(base: FrozenBase, hidden: tf.Tensor2D, targets: Int32Array, weights?: Float32Array, opts: HeadLossOptions = {}): tf.Scalar {
  const V = base.config.vocabSize;
  const N = hidden.shape[0];
  const chunk = opts.chunk ?? HEAD_CHUNK;
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`headLoss: opts.chunk must be a positive integer, got ${chunk}`);
  // chunked for many logits, and for a head larger than one chunk whatever N: the plain path
  // dequantizes the whole head (and again in backprop) — 2 GB of wasm heap for Qwen's at N = 16
  if (!(opts.chunked ?? (N * V > CHUNKED_LOSS_ABOVE || V > chunk))) return crossEntropy(base.linear(hidden, 'classifier'), targets, weights);
  const total = checkTargets('headLoss', targets, weights, N, V);
  // coef[i] = w_i / Σw (a row of zero weight adds nothing)
  const coef = new Float32Array(N);
  for (let i = 0; i < N; i++) coef[i] = total > 0 ? (weights ? weights[i] : 1) / total : 0;
  const chunks: [number, number][] = [];
  for (let v = 0; v < V; v += chunk) chunks.push([v, Math.min(V, v + chunk)]);
  const oneHotIn = (v0: number, v1: number): tf.Tensor2D => {
    const n = v1 - v0;
    const m = new Float32Array(N * n);
    targets.forEach((t, i) => {
      if (t >= v0 && t < v1) m[i * n + t - v0] = 1;
    });
    return tf.tensor2d(m, [N, n]);
  };
  const body = (h: tf.Tensor, save: tf.GradSaveFunc): { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor } => {
    const hid = h as tf.Tensor2D;
    let m = tf.fill([N, 1], -Infinity) as tf.Tensor2D;
    let s = tf.zeros([N, 1]) as tf.Tensor2D;
    let picked = tf.zeros([N, 1]) as tf.Tensor2D;
    for (const [v0, v1] of chunks) {
      const next = tf.tidy(() => {
        const logits = matMul(hid, base.headRowsT(v0, v1));
        const cm = tf.max(logits, 1, true);
        const mNew = tf.maximum(m, cm);
        const sNew = tf.add(tf.mul(s, tf.exp(tf.sub(m, mNew))), tf.sum(tf.exp(tf.sub(logits, mNew)), 1, true));
        const pNew = tf.add(picked, tf.sum(tf.mul(logits, oneHotIn(v0, v1)), 1, true));
        return [mNew, sNew, pNew] as tf.Tensor2D[];
      });
      tf.dispose([m, s, picked]);
      [m, s, picked] = next;
    }
    const lse = tf.add(m, tf.log(s)) as tf.Tensor2D;
    const c = tf.tensor2d(coef, [N, 1]);
    const value = tf.sum(tf.mul(tf.sub(lse, picked), c));
    save([hid, lse]);
    tf.dispose([m, s, picked, c]);
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor => {
      const [hs, lseS] = saved as [tf.Tensor2D, tf.Tensor2D];
      const scale = tf.mul(tf.tensor2d(coef, [N, 1]), dy);
      let dh = tf.zeros(hs.shape) as tf.Tensor2D;
      for (const [v0, v1] of chunks) {
        const next = tf.tidy(() => {
          const wT = base.headRowsT(v0, v1);
          const g = tf.mul(tf.sub(tf.exp(tf.sub(matMul(hs, wT), lseS)), oneHotIn(v0, v1)), scale) as tf.Tensor2D;
          return tf.add(dh, matMul(g, tf.transpose(wT))) as tf.Tensor2D;
        });
        dh.dispose();
        dh = next;
      }
      scale.dispose();
      return dh;
    };
    return { value, gradFunc };
  };
  const f = tf.customGrad(body as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(hidden) as tf.Scalar;
}
