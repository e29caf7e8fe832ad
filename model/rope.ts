/**
 * Rotary position embedding: pair i of a head rotates by angle pos · θ^(−2i/headSize) / fᵢ
 * (fᵢ = 1 unless the base has frequency factors, as Llama 3.1's `llama3` scaling). The pairs are
 * (2i, 2i+1) for `interleaved` (run.c, llama GGUF) or (i, i + hs/2) for `neox` (Qwen, HF).
 * Written as q·cos + rot(q)·sin, where rot(q) = (−q_b, q_a) per pair (a, b) is a product with a
 * fixed [hs, hs] matrix, so it stays a plain matMul (fast on wasm) with an exact gradient.
 */
import * as tf from '@tensorflow/tfjs';
import type { RopeStyle } from './config.js';
import { frozenMatMul, kernelMode } from './ops/matmul.js';
import { rotaryMix } from './ops/lean-ops.js';

/** How a head's dimensions are rotated: pairing, base frequency, per-frequency divisors. */
export interface RopeSpec {
  readonly theta: number;
  /** Default `interleaved`. */
  readonly style?: RopeStyle;
  /** hs/2 divisors of the frequencies (default all 1). */
  readonly freqFactors?: readonly number[];
}

/** The two dimensions (a, b) of pair k in a head of size hs. */
function pairOf(k: number, hs: number, style: RopeStyle): [number, number] {
  return style === 'neox' ? [k, k + hs / 2] : [2 * k, 2 * k + 1];
}

/** cos and sin tables [T, hs] for positions start … start+T−1. */
export function ropeTables(start: number, T: number, hs: number, theta: number | RopeSpec): { cos: Float32Array; sin: Float32Array } {
  const spec: RopeSpec = typeof theta === 'number' ? { theta } : theta;
  const style = spec.style ?? 'interleaved';
  const cos = new Float32Array(T * hs);
  const sin = new Float32Array(T * hs);
  const freqs = Float64Array.from({ length: hs / 2 }, (_, k) => 1 / Math.pow(spec.theta, (2 * k) / hs) / (spec.freqFactors?.[k] ?? 1));
  for (let t = 0; t < T; t++) {
    const pos = start + t;
    for (let k = 0; k < hs / 2; k++) {
      const a = pos * freqs[k];
      const c = Math.cos(a);
      const s = Math.sin(a);
      const [i, j] = pairOf(k, hs, style);
      cos[t * hs + i] = cos[t * hs + j] = c;
      sin[t * hs + i] = sin[t * hs + j] = s;
    }
  }
  return { cos, sin };
}

/** The [hs, hs] matrix rT (row-major) with x @ rT = rot(x): for each pair (a, b), (−x_b, x_a). */
export function rotationT(hs: number, style: RopeStyle): Float32Array {
  // for each pair (a, b): (x R)[a] = −x[b], (x R)[b] = x[a]
  const r = new Float32Array(hs * hs);
  for (let k = 0; k < hs / 2; k++) {
    const [a, b] = pairOf(k, hs, style);
    r[b * hs + a] = -1;
    r[a * hs + b] = 1;
  }
  return r;
}

/** Apply RoPE to x [B, T, heads, hs] whose first position is `start`. Call inside tf.tidy. */
export function applyRope(x: tf.Tensor4D, start: number, theta: number | RopeSpec): tf.Tensor4D {
  const [B, T, H, hs] = x.shape;
  const style = typeof theta === 'number' ? 'interleaved' : (theta.style ?? 'interleaved');
  const { cos, sin } = ropeTables(start, T, hs, theta);
  const rData = rotationT(hs, style);
  // one op saving nothing for backprop (the chain below keeps x and x R); stock mode keeps the chain
  if (kernelMode() === 'fast') return rotaryMix(x, cos, sin, [1, T, 1, hs], rData) as tf.Tensor4D;
  const cosT = tf.tensor4d(cos, [1, T, 1, hs]);
  const sinT = tf.tensor4d(sin, [1, T, 1, hs]);
  // the backward pass gets a fresh Rᵀ = −R: tensors of the forward pass are gone by then
  const rotated = frozenMatMul(
    tf.reshape(x, [B * T * H, hs]),
    () => tf.tensor2d(rData, [hs, hs]),
    () => tf.tensor2d(rData.map((v) => -v), [hs, hs]),
  ).reshape([B, T, H, hs]);
  return tf.add(tf.mul(x, cosT), tf.mul(rotated, sinT));
}
