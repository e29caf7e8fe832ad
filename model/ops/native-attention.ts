/**
 * Fused causal self-attention on the native addon (native/src/attention.cc) for the tfjs wasm
 * backend: softmax(scale·q kᵀ + causal mask) v, forward and gradient, each one kernel threaded
 * over (batch entry, kv head) groups, in place on the wasm heap. It replaces the op chain of the
 * transformer's attention (transposes into groups, two batched products, mask add, softmax and
 * their gradients: ~15 kernels per layer and a [B·H, T, T] probability tensor kept for backprop)
 * and keeps only q, k, v and the [B, H, T] row log-sum-exps; backprop recomputes the scores.
 * Installed by initBackend('wasm') when the addon loaded (FEDTUNE_NATIVE=0 or
 * FEDTUNE_NATIVE_FUSED=0 leaves the op chain); {@link fusedAttentionAvailable} says whether
 * {@link fusedCausalAttention} may be called.
 */
import * as tf from '@tensorflow/tfjs';
import { nativeAddon, type NativeAddon } from './native-addon.js';
import { nativeThreads } from './native-kernels.js';

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}
interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  attrs: Record<string, unknown>;
  backend: HeapBackend;
}

const FORWARD = 'FedtuneCausalAttention';
const BACKWARD = 'FedtuneCausalAttentionGrad';
let active = false;

/** [B, T, H, kvH, hs] of q [B, T, H, hs] and k, v [B, T, kvH, hs]. */
function sizes(q: tf.TensorInfo, k: tf.TensorInfo): [number, number, number, number, number] {
  const [B, T, H, hs] = q.shape;
  return [B, T, H, k.shape[2], hs];
}

function makeKernels(addon: NativeAddon): Record<string, (args: KernelArgs) => tf.TensorInfo[]> {
  return {
    [FORWARD]: ({ inputs: { q, k, v }, attrs, backend }) => {
      const [B, T, H, kvH, hs] = sizes(q, k);
      const out = backend.makeOutput([B, T, H, hs], 'float32');
      const lse = backend.makeOutput([B, H, T], 'float32');
      // views only after every allocation: the heap may have grown
      const f = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
      addon.attentionForward(f(q), f(k), f(v), f(out), f(lse), B, T, H, kvH, hs, attrs.scale as number, nativeThreads());
      return [out, lse];
    },
    [BACKWARD]: ({ inputs: { q, k, v, lse, dy }, attrs, backend }) => {
      const [B, T, H, kvH, hs] = sizes(q, k);
      const dq = backend.makeOutput([...q.shape], 'float32');
      const dk = backend.makeOutput([...k.shape], 'float32');
      const dv = backend.makeOutput([...v.shape], 'float32');
      const f = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
      addon.attentionBackward(f(q), f(k), f(v), f(lse), f(dy), f(dq), f(dk), f(dv), B, T, H, kvH, hs, attrs.scale as number, nativeThreads());
      return [dq, dk, dv];
    },
  };
}

/**
 * Register the fused attention kernels on the wasm backend (`true`) or remove them (`false`).
 * Returns whether they are now active: false when the addon did not load or is older than the
 * attention kernels. Call after the wasm backend is registered.
 */
export function setNativeAttention(enabled: boolean): boolean {
  if (typeof enabled !== 'boolean') throw new TypeError(`setNativeAttention: enabled must be a boolean, got ${typeof enabled}`);
  const st = nativeAddon();
  const usable = st.loaded && typeof st.addon.attentionForward === 'function';
  for (const name of [FORWARD, BACKWARD]) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  active = false;
  if (!enabled || !usable) return false;
  const kernels = makeKernels(st.addon);
  for (const name of [FORWARD, BACKWARD]) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: kernels[name] as unknown as tf.KernelFunc });
  return (active = true);
}

/** Whether {@link fusedCausalAttention} can run now: kernels installed and the wasm backend current. */
export function fusedAttentionAvailable(): boolean {
  return active && tf.getBackend() === 'wasm';
}

type Grad = (...args: unknown[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * Causal self-attention of q [B, T, H, hs] over k, v [B, T, kvH, hs] (H a multiple of kvH; query
 * head h uses kv head ⌊h / (H / kvH)⌋; query t sees keys 0 … t): softmax(scale · q kᵀ) v as
 * [B, T, H, hs], differentiable in q, k and v. Saves q, k, v and the row log-sum-exps for
 * backprop. Needs {@link fusedAttentionAvailable}; call inside tf.tidy.
 */
export function fusedCausalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number): tf.Tensor4D {
  if (!fusedAttentionAvailable()) throw new Error('fusedCausalAttention: the native attention kernels are not installed (see fusedAttentionAvailable())');
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!(t instanceof tf.Tensor) || t.rank !== 4 || t.dtype !== 'float32') throw new TypeError(`fusedCausalAttention: ${n} must be a rank-4 float32 tensor`);
  }
  const [B, T, H, hs] = q.shape;
  if (!tf.util.arraysEqual(k.shape, v.shape) || k.shape[0] !== B || k.shape[1] !== T || k.shape[3] !== hs || H % k.shape[2] !== 0) {
    throw new RangeError(`fusedCausalAttention: q [${q.shape}] does not go with k [${k.shape}] and v [${v.shape}]`);
  }
  if (hs > 1024) throw new RangeError(`fusedCausalAttention: head size ${hs} is above 1024`);
  if (!Number.isFinite(scale)) throw new RangeError(`fusedCausalAttention: scale must be finite, got ${scale}`);
  const run = (name: string, inputs: Record<string, tf.Tensor>): tf.Tensor[] => tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, { scale }) as unknown as tf.Tensor[];
  const op = tf.customGrad(((qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor, save: tf.GradSaveFunc) => {
    const [out, lse] = run(FORWARD, { q: qq, k: kk, v: vv });
    save([qq, kk, vv, lse]);
    return {
      value: out,
      gradFunc: (dy: tf.Tensor, [sq, sk, sv, sl]: tf.Tensor[]) => run(BACKWARD, { q: sq, k: sk, v: sv, lse: sl, dy }),
    };
  }) as unknown as Grad as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(q, k, v) as tf.Tensor4D;
}
