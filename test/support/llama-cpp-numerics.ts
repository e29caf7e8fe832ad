/**
 * llama.cpp's CPU matrix products with block-quantized weights quantize their *activations* too:
 * to Q8_0 (blocks of 32, fp16 scale amax/127, roundf) for Q8_0 / Q4_0 weights, and to Q8_K
 * (blocks of 256, float32 scale max/−127 of the signed extreme, round-to-nearest, ≤ 127) for
 * K-quant weights (ggml-cpu's quantize_row_q8_0 / quantize_row_q8_K). fedtune multiplies with
 * float32 activations. To check that fedtune reads a quantized file's weights exactly as
 * llama.cpp does, a test can run fedtune with the same activation rounding
 * ({@link withLlamaCppActivations}): any remaining difference is then the weights' fault.
 */
import * as tf from '@tensorflow/tfjs';
import { fromHalf, toHalf, type FrozenBase, type GgmlTypeName, type MatrixRef } from '../../model/index.js';

/** Round half to even, as SIMD rounding and ggml's nearest_int do. */
function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 ? 2 * Math.round(v / 2) : r;
}

/** Round rows of `cols` values as llama.cpp quantizes activations for a weight of type `weight`. */
export function roundActivations(x: Float32Array, cols: number, weight: GgmlTypeName): Float32Array {
  const out = Float32Array.from(x);
  if (weight === 'F32') return out;
  if (weight === 'F16') return out.map((v) => fromHalf(toHalf(v)));
  const k = weight.endsWith('_K');
  const qk = k ? 256 : 32;
  if (cols % qk !== 0) throw new RangeError(`roundActivations: rows of ${cols} are not whole blocks of ${qk}`);
  for (let b = 0; b < out.length; b += qk) {
    if (k) {
      let max = 0;
      let amax = 0;
      for (let j = 0; j < qk; j++) if (Math.abs(out[b + j]) > amax) (amax = Math.abs(out[b + j])), (max = out[b + j]);
      if (amax === 0) continue;
      const iscale = Math.fround(-127 / max);
      const d = Math.fround(1 / iscale);
      for (let j = 0; j < qk; j++) {
        const q = Math.min(127, roundEven(Math.fround(iscale * out[b + j])));
        out[b + j] = Math.fround(q * d);
      }
    } else {
      let amax = 0;
      for (let j = 0; j < qk; j++) amax = Math.max(amax, Math.abs(out[b + j]));
      // the AVX2 path: id = 127 / amax (not 1 / d), rounded half to even
      const d = Math.fround(amax / 127);
      const id = amax ? Math.fround(127 / amax) : 0;
      const dh = fromHalf(toHalf(d));
      for (let j = 0; j < qk; j++) out[b + j] = roundEven(Math.fround(out[b + j] * id)) * dh;
    }
  }
  return out;
}

/** A view of `base` whose matrix products round their input as llama.cpp's do for weights of `typeOf(ref)`. */
export function withLlamaCppActivations(base: FrozenBase, typeOf: (ref: MatrixRef) => GgmlTypeName): FrozenBase {
  const view = Object.create(base) as FrozenBase;
  view.linear = (x: tf.Tensor2D, ref: MatrixRef): tf.Tensor2D => {
    const rounded = tf.tensor2d(roundActivations(x.dataSync() as Float32Array, x.shape[1], typeOf(ref)), x.shape);
    return base.linear(rounded, ref);
  };
  return view;
}
