/**
 * Native matrix products for the tfjs wasm backend: BatchMatMul and _FusedMatMul kernels that
 * run the addon's SGEMM (native-addon.ts) directly on the wasm heap, so tensors never leave it.
 * Installed by initBackend('wasm') when the addon loaded; {@link setNativeKernels}(false)
 * restores tfjs's kernels. Unsupported cases (non-float32, batch shapes that broadcast beyond one
 * side being 1, prelu / other activations) fall through to tfjs's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeAddon, type NativeAddon } from './native-addon.js';

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}
interface KernelArgs {
  inputs: Record<string, tf.TensorInfo | undefined>;
  attrs: Record<string, unknown>;
  backend: HeapBackend;
}
type Kernel = (args: KernelArgs) => tf.TensorInfo;

const NAMES = ['BatchMatMul', '_FusedMatMul'] as const;
let originals: Record<string, Kernel> | undefined;
let active = false;
let threads = 1;

/** Product geometry of a BatchMatMul, or undefined when the native path does not cover it. */
function geometry(a: tf.TensorInfo, b: tf.TensorInfo, ta: boolean, tb: boolean) {
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return undefined;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = ta ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = ta ? a.shape[ra - 2] : a.shape[ra - 1];
  const K2 = tb ? b.shape[rb - 1] : b.shape[rb - 2];
  const N = tb ? b.shape[rb - 2] : b.shape[rb - 1];
  if (K !== K2) return undefined; // tfjs's kernel reports the mismatch
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  const batch = tf.util.sizeFromShape(outer);
  if ((batchA !== batch && batchA !== 1) || (batchB !== batch && batchB !== 1)) return undefined;
  return { M, N, K, batch, strideA: batchA === 1 ? 0 : M * K, strideB: batchB === 1 ? 0 : K * N, shape: [...outer, M, N] };
}

function product(addon: NativeAddon, args: KernelArgs): tf.TensorInfo | undefined {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const ta = !!args.attrs.transposeA;
  const tb = !!args.attrs.transposeB;
  const g = geometry(a, b, ta, tb);
  if (!g) return undefined;
  const out = args.backend.makeOutput(g.shape, 'float32');
  if (g.batch * g.M * g.N === 0) return out;
  // views only after the allocation: the heap may have grown
  const heap = (t: tf.TensorInfo) => args.backend.typedArrayFromHeap(t) as Float32Array;
  addon.sgemm(heap(a), heap(b), heap(out), g.batch, g.M, g.N, g.K, ta, tb, g.strideA, g.strideB, threads);
  return out;
}

function makeKernels(addon: NativeAddon, orig: Record<string, Kernel>): Record<string, Kernel> {
  return {
    BatchMatMul: (args) => product(addon, args) ?? orig.BatchMatMul(args),
    _FusedMatMul: (args) => {
      const { bias, preluActivationWeights } = args.inputs;
      const act = (args.attrs.activation as string | undefined) ?? 'linear';
      const biasOk = !bias || (bias.dtype === 'float32' && bias.shape.length <= 1);
      if (preluActivationWeights || (act !== 'linear' && act !== 'relu') || !biasOk) return orig._FusedMatMul(args);
      const out = product(addon, args);
      if (!out) return orig._FusedMatMul(args);
      const o = args.backend.typedArrayFromHeap(out) as Float32Array;
      const N = out.shape[out.shape.length - 1];
      if (bias) {
        const bv = args.backend.typedArrayFromHeap(bias) as Float32Array;
        if (bv.length === 1) for (let i = 0; i < o.length; i++) o[i] += bv[0];
        else if (bv.length === N) for (let i = 0; i < o.length; i++) o[i] += bv[i % N];
        else throw new RangeError(`_FusedMatMul (native): bias of shape [${bias.shape}] does not broadcast to [${out.shape}]`);
      }
      if (act === 'relu') for (let i = 0; i < o.length; i++) if (o[i] < 0) o[i] = 0;
      return out;
    },
  };
}

function register(kernels: Record<string, Kernel>): void {
  for (const name of NAMES) {
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: kernels[name] as unknown as tf.KernelFunc });
  }
}

/**
 * Route the wasm backend's matrix products through the native addon (`true`) or back to tfjs's
 * kernels (`false`). Returns whether native products are now active: false when the addon did
 * not load (see nativeAddon()). Call after the wasm backend is registered.
 */
export function setNativeKernels(enabled: boolean): boolean {
  if (typeof enabled !== 'boolean') throw new TypeError(`setNativeKernels: enabled must be a boolean, got ${typeof enabled}`);
  if (!originals) {
    const found = NAMES.map((n) => tf.getKernel(n, 'wasm'));
    if (found.some((k) => !k)) throw new Error('setNativeKernels: the wasm backend is not registered (import @tensorflow/tfjs-backend-wasm first)');
    originals = Object.fromEntries(found.map((k, i) => [NAMES[i], k!.kernelFunc as unknown as Kernel]));
  }
  const st = nativeAddon();
  if (enabled && !st.loaded) return (active = false);
  if (enabled === active) return active;
  register(enabled && st.loaded ? makeKernels(st.addon, originals) : originals);
  return (active = enabled);
}

/** Whether the native products are installed. */
export function nativeKernelsActive(): boolean {
  return active;
}

/** Threads the native SGEMM may use (default 1; products under ~4 MFLOP always use one). */
export function setNativeThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`setNativeThreads: n must be an integer in [1, 64], got ${n}`);
  threads = n;
}

/** The thread count set by {@link setNativeThreads}. */
export function nativeThreads(): number {
  return threads;
}
