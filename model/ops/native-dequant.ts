/**
 * Dequantizing a frozen weight (Q8_0 / Q4_0 blocks, model/quant.ts) straight into a new tensor on
 * the wasm heap with the native addon (native/src/dequant.cc), threaded: no float32 copy in JS, no
 * upload copy, no garbage. Values are bit-identical to dequantizeInto (each is an exact product).
 * Installed by initBackend('wasm') with the fused native ops; K-quant kinds and every other
 * backend keep the JS path ({@link nativeDequantized} returns undefined).
 */
import * as tf from '@tensorflow/tfjs';
import type { QuantizedArray } from '../quant.js';
import { nativeAddon, type NativeAddon } from './native-addon.js';
import { nativeThreads } from './native-kernels.js';

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

const NAME = 'FedtuneDequantize';
let active = false;

function kernel(addon: NativeAddon) {
  return ({ attrs, backend }: { attrs: Record<string, unknown>; backend: HeapBackend }): tf.TensorInfo => {
    const q = attrs.q as QuantizedArray;
    const out = backend.makeOutput([...(attrs.shape as number[])], 'float32');
    addon.dequantize(q.kind === 'q8_0' ? 8 : 4, q.data, q.scales, q.block, backend.typedArrayFromHeap(out) as Float32Array, q.length, nativeThreads());
    return out;
  };
}

/** Register the dequantization kernel on the wasm backend (`true`) or remove it; returns whether it is active. */
export function setNativeDequant(enabled: boolean): boolean {
  if (typeof enabled !== 'boolean') throw new TypeError(`setNativeDequant: enabled must be a boolean, got ${typeof enabled}`);
  const st = nativeAddon();
  if (tf.getKernel(NAME, 'wasm')) tf.unregisterKernel(NAME, 'wasm');
  active = false;
  if (!enabled || !st.loaded || typeof st.addon.dequantize !== 'function') return false;
  tf.registerKernel({ kernelName: NAME, backendName: 'wasm', kernelFunc: kernel(st.addon) as unknown as tf.KernelFunc });
  return (active = true);
}

/**
 * `q` dequantized as a new float32 tensor of `shape` by the native kernel, or undefined when it
 * cannot run here (kernel not installed, another backend, a K-quant kind); the caller then
 * dequantizes in JS. Throws RangeError when `shape` does not hold q.length values.
 */
export function nativeDequantized(q: QuantizedArray, shape: readonly number[]): tf.Tensor | undefined {
  if (!active || tf.getBackend() !== 'wasm' || (q.kind !== 'q8_0' && q.kind !== 'q4_0')) return undefined;
  if (tf.util.sizeFromShape([...shape]) !== q.length) throw new RangeError(`nativeDequantized: shape [${shape}] does not hold ${q.length} values`);
  return tf.engine().runKernel(NAME, {}, { q, shape: [...shape] } as unknown as tf.NamedAttrMap) as unknown as tf.Tensor;
}
