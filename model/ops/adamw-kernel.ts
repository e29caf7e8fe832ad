/**
 * One AdamW update of one variable as a single kernel of the wasm backend ('FedtuneAdamW'),
 * reading and writing the wasm heap in place of the ~16 element-wise kernels per variable of the
 * op-by-op update (a LoRA step's optimizer was ~300 kernel calls, each a few tens of µs of
 * dispatch for a few hundred values). Inputs p, m, v, g (float32, one shape); outputs the new p,
 * m and v, bit-identical to the op chain (the same float32 roundings, see below). Installed by
 * initBackend('wasm') (not with stockKernels); model/adamw.ts uses it when registered.
 */
import * as tf from '@tensorflow/tfjs';

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}
interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  attrs: Record<string, unknown>;
  backend: HeapBackend;
}

/** The kernel's name. */
export const ADAMW_KERNEL = 'FedtuneAdamW';

/** Hyper-parameters of one update, with the bias corrections of its step. */
export interface AdamWStepAttrs {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** 1 − beta1^t */
  readonly c1: number;
  /** 1 − beta2^t */
  readonly c2: number;
}

function adamwKernel({ inputs: { p, m, v, g }, attrs, backend }: KernelArgs): tf.TensorInfo[] {
  const { lr, beta1, beta2, eps, weightDecay, c1, c2 } = attrs as unknown as AdamWStepAttrs;
  const outs = [p, m, v].map((t) => backend.makeOutput([...t.shape], 'float32'));
  // views only after every allocation: the heap may have grown
  const [pv, mv, vv, gv, po, mo, vo] = [p, m, v, g, ...outs].map((t) => backend.typedArrayFromHeap(t) as Float32Array);
  // every scalar and every operation rounded to float32 as the op chain's kernels round them
  // (IEEE +, −, ×, ÷, √ of float32 values done in float64 and rounded once are exact), so the
  // result is bit-identical to model/adamw.ts's chain and to the cohort trainer's
  const f = Math.fround;
  const [b1, b2, nb1, nb2, fc1, fc2, feps, flr, decay] = [beta1, beta2, 1 - beta1, 1 - beta2, c1, c2, eps, lr, 1 - lr * weightDecay].map(f);
  for (let i = 0; i < pv.length; i++) {
    const gi = gv[i];
    const mi = f(f(mv[i] * b1) + f(gi * nb1));
    const vi = f(f(vv[i] * b2) + f(f(gi * gi) * nb2));
    mo[i] = mi;
    vo[i] = vi;
    const upd = f(f(mi / fc1) / f(f(Math.sqrt(f(vi / fc2))) + feps));
    po[i] = f((weightDecay ? f(pv[i] * decay) : pv[i]) - f(upd * flr));
  }
  return outs;
}

/** Register the AdamW kernel on the wasm backend (idempotent). */
export function installAdamWKernel(): void {
  if (tf.getKernel(ADAMW_KERNEL, 'wasm')) return;
  tf.registerKernel({ kernelName: ADAMW_KERNEL, backendName: 'wasm', kernelFunc: adamwKernel as unknown as tf.KernelFunc });
}

/** Remove it again (benchmarks and tests of the op-by-op update). */
export function uninstallAdamWKernel(): void {
  if (tf.getKernel(ADAMW_KERNEL, 'wasm')) tf.unregisterKernel(ADAMW_KERNEL, 'wasm');
}

/**
 * New [p, m, v] of one AdamW update of p by gradient g, when the current backend has the kernel;
 * undefined otherwise (the caller runs the op-by-op update). The caller disposes the results.
 */
export function adamwStepFused(p: tf.Tensor, m: tf.Tensor, v: tf.Tensor, g: tf.Tensor, attrs: AdamWStepAttrs): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (!tf.getKernel(ADAMW_KERNEL, tf.getBackend())) return undefined;
  if (![p, m, v, g].every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, p.shape))) return undefined;
  return tf.engine().runKernel(ADAMW_KERNEL, { p, m, v, g } as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor];
}
