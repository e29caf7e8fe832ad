/**
 * Choosing and starting the TensorFlow.js backend. Default: `tensorflow` (tfjs-node) when that
 * optional dependency installed, else `wasm` (SIMD); `cpu` is a slow fallback. The choice comes
 * from the `backend` argument, else the FEDTUNE_BACKEND environment variable, else `auto`.
 * No tensor may be created before {@link initBackend} resolves.
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmKernels } from './ops/wasm-kernels.js';
import { installWasmCompareKernels } from './ops/wasm-compare.js';
import { installAdamWKernel } from './ops/adamw-kernel.js';
import { startThreadedWasm } from './ops/wasm-threads.js';
import { nativeAddon } from './ops/native-addon.js';
import { setNativeKernels, setNativeThreads } from './ops/native-kernels.js';
import { setNativeAttention } from './ops/native-attention.js';
import { setNativeRowwise } from './ops/native-rowwise.js';
import { setNativeDequant } from './ops/native-dequant.js';

/** Backends fedtune can run on. */
export type BackendName = 'wasm' | 'cpu' | 'tensorflow';
/** A backend name, or `auto` for the best available. */
export type BackendChoice = BackendName | 'auto';
const CHOICES: readonly BackendChoice[] = ['auto', 'wasm', 'cpu', 'tensorflow'];

/** What {@link initBackend} started. */
export interface BackendInfo {
  readonly name: BackendName;
  /** One line for logs, e.g. "wasm (simd, 1 thread)". */
  readonly description: string;
}

let started: BackendInfo | undefined;

async function tryTfjsNode(): Promise<boolean> {
  try {
    const modName = '@tensorflow/tfjs-node';
    await import(modName);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link initBackend}. */
export interface BackendOptions {
  /** Leave the wasm backend's kernels as tfjs ships them (for benchmarks of the workarounds). */
  readonly stockKernels?: boolean;
  /**
   * wasm threads (default: FEDTUNE_WASM_THREADS, else 1). More than 1 starts tfjs's threaded
   * build under Node (see ops/wasm-threads.ts); call terminateWasmThreads() before exit.
   */
  readonly threads?: number;
  /**
   * Run wasm matrix products on the native addon (native/) when it built (default: true unless
   * FEDTUNE_NATIVE=0). Ignored with stockKernels.
   */
  readonly native?: boolean;
  /** Threads of the native products (default: FEDTUNE_NATIVE_THREADS, else `threads`). */
  readonly nativeThreads?: number;
  /**
   * With the native products, also run the fused native ops: causal attention
   * (ops/native-attention.ts), RMSNorm, SwiGLU and the loss (ops/native-rowwise.ts), and
   * dequantize frozen weights natively (ops/native-dequant.ts). Default: true unless
   * FEDTUNE_NATIVE_FUSED=0.
   */
  readonly nativeFused?: boolean;
}

let starting: Promise<BackendInfo> | undefined;

/** Start a backend (idempotent for the same choice; concurrent calls share one start). */
export async function initBackend(choice: BackendChoice | undefined = undefined, options: BackendOptions = {}): Promise<BackendInfo> {
  // a start in flight: wait for it rather than racing tf.setBackend
  while (starting) await starting.catch(() => undefined);
  starting = startBackend(choice, options);
  try {
    return await starting;
  } finally {
    starting = undefined;
  }
}

async function startBackend(choice: BackendChoice | undefined, options: BackendOptions): Promise<BackendInfo> {
  const fromEnv = choice === undefined && process.env.FEDTUNE_BACKEND !== undefined;
  const want = (choice ?? (process.env.FEDTUNE_BACKEND as BackendChoice | undefined) ?? 'auto') as BackendChoice;
  if (!CHOICES.includes(want)) {
    throw new RangeError(`initBackend: backend must be one of ${CHOICES.join(', ')}, got "${want}" (from ${fromEnv ? 'FEDTUNE_BACKEND' : 'the option'})`);
  }
  if (started && (want === 'auto' || want === started.name)) return started;
  let name: BackendName;
  if (want === 'tensorflow' || want === 'auto') {
    const ok = await tryTfjsNode();
    if (!ok && want === 'tensorflow') throw new Error('backend "tensorflow" needs @tensorflow/tfjs-node, which is not installed on this machine');
    name = ok ? 'tensorflow' : 'wasm';
  } else {
    name = want;
  }
  const threads = options.threads ?? Number(process.env.FEDTUNE_WASM_THREADS ?? 1);
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`initBackend: threads must be a positive integer, got ${threads}`);
  if (name === 'wasm' && threads > 1) await startThreadedWasm(threads);
  else {
    if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend(name))) throw new Error(`backend "${name}" failed to initialise`);
    await tf.ready();
  }
  if (name === 'wasm' && !options.stockKernels) {
    installWasmKernels();
    installWasmCompareKernels();
    installAdamWKernel();
  }
  let nativeNote = '';
  if (name === 'wasm') {
    const wantNative = !options.stockKernels && (options.native ?? process.env.FEDTUNE_NATIVE !== '0');
    const nt = options.nativeThreads ?? Number(process.env.FEDTUNE_NATIVE_THREADS ?? threads);
    if (!Number.isInteger(nt) || nt < 1 || nt > 64) throw new RangeError(`initBackend: nativeThreads must be an integer in [1, 64], got ${nt}`);
    setNativeThreads(nt);
    const products = setNativeKernels(wantNative);
    if (products) {
      const st = nativeAddon();
      nativeNote = ` + native sgemm (${st.loaded ? st.addon.isa() : '?'}, ${nt} thread${nt === 1 ? '' : 's'})`;
    }
    const wantFused = products && (options.nativeFused ?? process.env.FEDTUNE_NATIVE_FUSED !== '0');
    const fused = [setNativeAttention(wantFused) ? 'attention' : '', setNativeRowwise(wantFused) ? 'rmsnorm, swiglu, loss' : '', setNativeDequant(wantFused) ? 'dequantization' : ''].filter((x) => x);
    if (fused.length) nativeNote += ` + native ${fused.join(', ')}`;
  }
  let description: string = name;
  if (name === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const threads = wasm.getThreadsCount();
    description = `wasm (${simd ? 'simd' : 'no simd'}, ${threads} thread${threads === 1 ? '' : 's'})${nativeNote}`;
  }
  started = { name, description };
  return started;
}
