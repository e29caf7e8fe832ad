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

/**
 * RoPE applied inside the op (see rope.ts): x·cos + (x R)·sin per position, with cos / sin the
 * [T, hs] tables of ropeTables (equal on both dimensions of a pair) and R the signed pairing of
 * the head's dimensions, given as `rT` ([hs, hs] row-major, x R = x @ rT, one ±1 per column).
 */
export interface FusedRope {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly rT: Float32Array;
}

/** The kernels' form of a {@link FusedRope}: partner dimension and sign per dimension. */
function ropeAttrs(r: FusedRope, T: number, hs: number): { cos: Float32Array; sin: Float32Array; partner: Int32Array; sign: Float32Array } {
  if (r.cos.length !== T * hs || r.sin.length !== T * hs) throw new RangeError(`fusedCausalAttention: rope.cos and rope.sin must hold T·hs = ${T * hs} values`);
  if (r.rT.length !== hs * hs) throw new RangeError(`fusedCausalAttention: rope.rT must hold hs² = ${hs * hs} values`);
  const partner = new Int32Array(hs).fill(-1);
  const sign = new Float32Array(hs);
  for (let j = 0; j < hs; j++) {
    for (let i = 0; i < hs; i++) {
      const x = r.rT[i * hs + j];
      if (x === 0) continue;
      if ((x !== 1 && x !== -1) || partner[j] >= 0) throw new RangeError('fusedCausalAttention: rope.rT must have one ±1 per column (a signed pairing of dimensions)');
      partner[j] = i;
      sign[j] = x;
    }
  }
  for (let j = 0; j < hs; j++) {
    const p = partner[j];
    if (p < 0 || p === j || partner[p] !== j || sign[p] !== -sign[j]) throw new RangeError('fusedCausalAttention: rope.rT must pair every dimension with another, with opposite signs');
    for (let t = 0; t < T; t++) {
      if (r.sin[t * hs + j] !== r.sin[t * hs + p] || r.cos[t * hs + j] !== r.cos[t * hs + p]) throw new RangeError('fusedCausalAttention: rope.cos / rope.sin must be equal on both dimensions of a pair');
    }
  }
  return { cos: r.cos, sin: r.sin, partner, sign };
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
      const r = attrs.rope as ReturnType<typeof ropeAttrs> | undefined;
      if (r) addon.attentionForward(f(q), f(k), f(v), f(out), f(lse), B, T, H, kvH, hs, attrs.scale as number, nativeThreads(), r.cos, r.sin, r.partner, r.sign);
      else addon.attentionForward(f(q), f(k), f(v), f(out), f(lse), B, T, H, kvH, hs, attrs.scale as number, nativeThreads());
      return [out, lse];
    },
    [BACKWARD]: ({ inputs: { q, k, v, lse, dy }, attrs, backend }) => {
      const [B, T, H, kvH, hs] = sizes(q, k);
      const dq = backend.makeOutput([...q.shape], 'float32');
      const dk = backend.makeOutput([...k.shape], 'float32');
      const dv = backend.makeOutput([...v.shape], 'float32');
      const f = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t) as Float32Array;
      const r = attrs.rope as ReturnType<typeof ropeAttrs> | undefined;
      if (r) addon.attentionBackward(f(q), f(k), f(v), f(lse), f(dy), f(dq), f(dk), f(dv), B, T, H, kvH, hs, attrs.scale as number, nativeThreads(), r.cos, r.sin, r.partner, r.sign);
      else addon.attentionBackward(f(q), f(k), f(v), f(lse), f(dy), f(dq), f(dk), f(dv), B, T, H, kvH, hs, attrs.scale as number, nativeThreads());
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
 * [B, T, H, hs], differentiable in q, k and v. With `rope`, q and k are taken before RoPE and
 * rotated inside the op (positions 0 … T−1 of the tables). Saves q, k, v and the row
 * log-sum-exps for backprop. Needs {@link fusedAttentionAvailable}; call inside tf.tidy.
 */
export function fusedCausalAttention(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number, rope?: FusedRope): tf.Tensor4D {
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
  const attrs = { scale, ...(rope ? { rope: ropeAttrs(rope, T, hs) } : {}) };
  const run = (name: string, inputs: Record<string, tf.Tensor>): tf.Tensor[] => tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[];
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
