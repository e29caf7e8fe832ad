/**
 * RMSNorm, SwiGLU and the next-token loss as single native kernels (native/src/rowwise.cc) for the tfjs wasm backend,
 * forward and gradient, in place on the wasm heap and threaded over rows. They stand in for the
 * element-wise chains of lean-ops.ts (leanRmsNorm: 6 kernels forward and ~12 backward; swiglu: 3
 * and ~8), save the same tensors for backprop (x and w; a and b), and give the same values to
 * float32 rounding. Installed by initBackend('wasm') with the other fused ops when the addon
 * loaded; {@link fusedRowwiseAvailable} says whether {@link fusedRmsNorm} / {@link fusedSwiglu} may
 * be called.
 */
import * as tf from '@tensorflow/tfjs';
import { gradientSkippable } from './lean-grads.js';
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
type Kernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const NAMES = ['FedtuneRmsNorm', 'FedtuneRmsNormGrad', 'FedtuneSwiglu', 'FedtuneSwigluGrad', 'FedtuneNll', 'FedtuneNllGrad'] as const;
let active = false;

function makeKernels(addon: NativeAddon): Record<(typeof NAMES)[number], Kernel> {
  const f = (b: HeapBackend, t: tf.TensorInfo) => b.typedArrayFromHeap(t) as Float32Array;
  const rowsOf = (x: tf.TensorInfo): [number, number] => {
    const dim = x.shape[x.shape.length - 1];
    return [tf.util.sizeFromShape(x.shape) / dim, dim];
  };
  return {
    FedtuneRmsNorm: ({ inputs: { x, w }, attrs, backend }) => {
      const y = backend.makeOutput([...x.shape], 'float32');
      const [rows, dim] = rowsOf(x);
      addon.rmsNormForward(f(backend, x), f(backend, w), f(backend, y), rows, dim, attrs.eps as number, nativeThreads());
      return y;
    },
    FedtuneRmsNormGrad: ({ inputs: { x, w, dy }, attrs, backend }) => {
      const dx = backend.makeOutput([...x.shape], 'float32');
      const dw = backend.makeOutput([...w.shape], 'float32');
      const [rows, dim] = rowsOf(x);
      const dwv = f(backend, dw);
      if (!attrs.needW) dwv.fill(0);
      addon.rmsNormBackward(f(backend, x), f(backend, w), f(backend, dy), f(backend, dx), attrs.needW ? dwv : null, rows, dim, attrs.eps as number, nativeThreads());
      return [dx, dw];
    },
    FedtuneSwiglu: ({ inputs: { a, b }, backend }) => {
      const y = backend.makeOutput([...a.shape], 'float32');
      addon.swigluForward(f(backend, a), f(backend, b), f(backend, y), tf.util.sizeFromShape(a.shape), nativeThreads());
      return y;
    },
    FedtuneSwigluGrad: ({ inputs: { a, b, dy }, backend }) => {
      const da = backend.makeOutput([...a.shape], 'float32');
      const db = backend.makeOutput([...b.shape], 'float32');
      addon.swigluBackward(f(backend, a), f(backend, b), f(backend, dy), f(backend, da), f(backend, db), tf.util.sizeFromShape(a.shape), nativeThreads());
      return [da, db];
    },
    FedtuneNll: ({ inputs: { logits }, attrs, backend }) => {
      const [rows, vocab] = logits.shape;
      const nll = backend.makeOutput([rows], 'float32');
      const lse = backend.makeOutput([rows], 'float32');
      addon.nllForward(f(backend, logits), attrs.targets as Int32Array, f(backend, nll), f(backend, lse), rows, vocab, nativeThreads());
      return [nll, lse];
    },
    FedtuneNllGrad: ({ inputs: { logits, lse, dy }, attrs, backend }) => {
      const [rows, vocab] = logits.shape;
      const dx = backend.makeOutput([rows, vocab], 'float32');
      addon.nllBackward(f(backend, logits), f(backend, lse), attrs.targets as Int32Array, f(backend, dy), f(backend, dx), rows, vocab, nativeThreads());
      return dx;
    },
  };
}

/**
 * Register the fused RMSNorm / SwiGLU kernels on the wasm backend (`true`) or remove them
 * (`false`). Returns whether they are now active: false when the addon did not load or lacks
 * them. Call after the wasm backend is registered.
 */
export function setNativeRowwise(enabled: boolean): boolean {
  if (typeof enabled !== 'boolean') throw new TypeError(`setNativeRowwise: enabled must be a boolean, got ${typeof enabled}`);
  const st = nativeAddon();
  const usable = st.loaded && typeof st.addon.rmsNormForward === 'function';
  for (const name of NAMES) if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
  active = false;
  if (!enabled || !usable) return false;
  const kernels = makeKernels(st.addon);
  for (const name of NAMES) tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: kernels[name] as unknown as tf.KernelFunc });
  return (active = true);
}

/** Whether {@link fusedRmsNorm} and {@link fusedSwiglu} can run now (kernels installed, wasm backend current). */
export function fusedRowwiseAvailable(): boolean {
  return active && tf.getBackend() === 'wasm';
}

type Grad = (...args: unknown[]) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };
const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): tf.Tensor | tf.Tensor[] =>
  tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as unknown as tf.Tensor | tf.Tensor[];

function check(fn: string): void {
  if (!fusedRowwiseAvailable()) throw new Error(`${fn}: the native row-wise kernels are not installed (see fusedRowwiseAvailable())`);
}

/**
 * RMSNorm over the last axis of x, x / √(mean(x²) + eps) · w, as one native kernel each way; saves
 * x and w. Under leanVariableGrads the gradient of a frozen w is skipped (zeros, see
 * gradientSkippable). Needs {@link fusedRowwiseAvailable}; call inside tf.tidy.
 */
export function fusedRmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor1D, eps: number): T {
  check('fusedRmsNorm');
  if (!(x instanceof tf.Tensor) || x.dtype !== 'float32' || x.rank < 1) throw new TypeError('fusedRmsNorm: x must be a float32 tensor of rank ≥ 1');
  if (!(w instanceof tf.Tensor) || w.dtype !== 'float32' || w.rank !== 1 || w.size !== x.shape[x.rank - 1]) throw new RangeError(`fusedRmsNorm: w [${w.shape}] must be 1-D with x's last size (x is [${x.shape}])`);
  if (!(eps >= 0)) throw new RangeError(`fusedRmsNorm: eps must be a number ≥ 0, got ${eps}`);
  let y: tf.Tensor | undefined;
  const op = tf.customGrad(((xx: tf.Tensor, ww: tf.Tensor, save: tf.GradSaveFunc) => {
    save([xx, ww]);
    return {
      value: run('FedtuneRmsNorm', { x: xx, w: ww }, { eps }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, [sx, sw]: tf.Tensor[]) => run('FedtuneRmsNormGrad', { x: sx, w: sw, dy }, { eps, needW: !(y && gradientSkippable(w, y)) }) as tf.Tensor[],
    };
  }) as unknown as Grad as unknown as Parameters<typeof tf.customGrad>[0]);
  y = op(x, w);
  return y as T;
}

/** silu(a)·b = a·σ(a)·b for a and b of one shape, as one native kernel each way; saves a and b. Needs {@link fusedRowwiseAvailable}. */
export function fusedSwiglu<T extends tf.Tensor>(a: T, b: T): T {
  check('fusedSwiglu');
  if (!(a instanceof tf.Tensor) || !(b instanceof tf.Tensor) || a.dtype !== 'float32' || b.dtype !== 'float32') throw new TypeError('fusedSwiglu: a and b must be float32 tensors');
  if (!tf.util.arraysEqual(a.shape, b.shape)) throw new RangeError(`fusedSwiglu: a is [${a.shape}] but b is [${b.shape}]`);
  const op = tf.customGrad(((aa: tf.Tensor, bb: tf.Tensor, save: tf.GradSaveFunc) => {
    save([aa, bb]);
    return {
      value: run('FedtuneSwiglu', { a: aa, b: bb }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, [sa, sb]: tf.Tensor[]) => run('FedtuneSwigluGrad', { a: sa, b: sb, dy }) as tf.Tensor[],
    };
  }) as unknown as Grad as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(a, b) as T;
}

/**
 * Next-token negative log-likelihood of each row of logits [N, vocab]: logsumexp(row) −
 * row[target], as [N], by one native kernel each way (the gradient, (softmax − one-hot)·dnll, is
 * one pass too); saves the logits and the [N] log-sum-exps. Needs {@link fusedRowwiseAvailable}.
 */
export function fusedNll(logits: tf.Tensor2D, targets: Int32Array): tf.Tensor1D {
  check('fusedNll');
  if (!(logits instanceof tf.Tensor) || logits.rank !== 2 || logits.dtype !== 'float32') throw new TypeError('fusedNll: logits must be a rank-2 float32 tensor');
  const [N, V] = logits.shape;
  if (!(targets instanceof Int32Array) || targets.length !== N) throw new RangeError(`fusedNll: targets must be an Int32Array of ${N} values`);
  for (let i = 0; i < N; i++) if (!(targets[i] >= 0 && targets[i] < V)) throw new RangeError(`fusedNll: target ${targets[i]} at ${i} is outside the vocabulary [0, ${V})`);
  const t = Int32Array.from(targets); // the caller may reuse its array before backprop
  const op = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    const [nll, lse] = run('FedtuneNll', { logits: x }, { targets: t }) as tf.Tensor[];
    save([x, lse]);
    return {
      value: nll,
      gradFunc: (dy: tf.Tensor, [sx, sl]: tf.Tensor[]) => run('FedtuneNllGrad', { logits: sx, lse: sl, dy }, { targets: t }) as tf.Tensor,
    };
  }) as unknown as Grad as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(logits) as tf.Tensor1D;
}
