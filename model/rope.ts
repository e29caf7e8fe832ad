/**
 * Rotary position embedding as run.c applies it: for each head, pairs (2i, 2i+1) rotate by
 * angle pos · θ^(−2i/headSize). Written as q·cos + rot(q)·sin, where rot(q) = (−q₁, q₀) per pair
 * is a product with a fixed [hs, hs] matrix, so it stays a plain matMul (fast on wasm) with an
 * exact gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { frozenMatMul } from './ops/matmul.js';

/** cos and sin tables [T, hs] for positions start … start+T−1. */
export function ropeTables(start: number, T: number, hs: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(T * hs);
  const sin = new Float32Array(T * hs);
  const freqs = Float64Array.from({ length: hs / 2 }, (_, k) => 1 / Math.pow(theta, (2 * k) / hs));
  for (let t = 0; t < T; t++) {
    const pos = start + t;
    for (let i = 0; i < hs; i += 2) {
      const a = pos * freqs[i / 2];
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[t * hs + i] = cos[t * hs + i + 1] = c;
      sin[t * hs + i] = sin[t * hs + i + 1] = s;
    }
  }
  return { cos, sin };
}

function rotationT(hs: number): Float32Array {
  // (x R)[2i] = −x[2i+1], (x R)[2i+1] = x[2i]
  const r = new Float32Array(hs * hs);
  for (let i = 0; i < hs; i += 2) {
    r[(i + 1) * hs + i] = -1;
    r[i * hs + i + 1] = 1;
  }
  return r;
}

/** Apply RoPE to x [B, T, heads, hs] whose first position is `start`. Call inside tf.tidy. */
export function applyRope(x: tf.Tensor4D, start: number, theta: number): tf.Tensor4D {
  const [B, T, H, hs] = x.shape;
  const { cos, sin } = ropeTables(start, T, hs, theta);
  const cosT = tf.tensor4d(cos, [1, T, 1, hs]);
  const sinT = tf.tensor4d(sin, [1, T, 1, hs]);
  const rData = rotationT(hs);
  // the backward pass gets a fresh Rᵀ = −R: tensors of the forward pass are gone by then
  const rotated = frozenMatMul(
    tf.reshape(x, [B * T * H, hs]),
    () => tf.tensor2d(rData, [hs, hs]),
    () => tf.tensor2d(rData.map((v) => -v), [hs, hs]),
  ).reshape([B, T, H, hs]);
  return tf.add(tf.mul(x, cosT), tf.mul(rotated, sinT));
}
