/**
 * Multi-threaded wasm under Node. tfjs 4.22 turns wasm threads off when running in Node
 * (WASM_HAS_MULTITHREAD_SUPPORT is false there) and hands emscripten Blob URLs for the pthread
 * worker and main scripts, which Node's worker_threads cannot load. This starts the threaded
 * SIMD build anyway: it forces the flag, serves both scripts from files in a temporary folder,
 * lifts the C++ side's cap of (logical cores / 2) threads while the module initialises, and
 * waits until the pool's workers run. Measured on 2 cores: 1.9× on a 1024³ matMul, ~1.3× on a
 * LoRA training step. Call {@link terminateWasmThreads} before exit, or the workers keep Node
 * alive.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

const require = createRequire(import.meta.url);

interface PThreadPool {
  runningWorkers: { loaded?: boolean; runPthread?: unknown }[];
  /** Preloaded workers no pthread runs on. */
  unusedWorkers: { terminate(): unknown }[];
  terminateAllThreads(): void;
}

function pool(): PThreadPool | undefined {
  return (tf.findBackend('wasm') as unknown as { wasm?: { PThread?: PThreadPool } } | undefined)?.wasm?.PThread;
}

/** Start the wasm backend with `threads` threads (≥ 2); resolves to the count actually running. */
export async function startThreadedWasm(threads: number): Promise<number> {
  if (!Number.isInteger(threads) || threads < 2 || threads > 64) throw new RangeError(`startThreadedWasm: threads must be an integer in [2, 64], got ${threads}`);
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const pkg = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const { wasmWorkerContents } = require(join(pkg, 'wasm-out/tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents: string };
  const factory = require(join(pkg, 'wasm-out/tfjs-backend-wasm-threaded-simd.js')) as { default?: unknown };
  const dir = mkdtempSync(join(os.tmpdir(), 'fedtune-wasm-mt-'));
  // workers may be spawned later from these files, so they go only when the process ends
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const mainFile = join(dir, 'main.js');
  const workerFile = join(dir, 'worker.js');
  writeFileSync(mainFile, `var WasmBackendModuleThreadedSimd = ${String(factory.default ?? factory)}`);
  // inside the worker, the posted main-script Blob is turned into a URL and loaded: point it at the file
  writeFileSync(workerFile, `URL.createObjectURL = () => ${JSON.stringify(mainFile)}; URL.revokeObjectURL = () => {};\n${wasmWorkerContents.replace(/\n/g, '\\n')}`);
  const origCreate = URL.createObjectURL;
  const origCpus = os.cpus;
  URL.createObjectURL = ((blob: Blob) => (blob && blob.type === 'application/javascript' ? workerFile : origCreate(blob))) as typeof URL.createObjectURL;
  os.cpus = () => {
    const c = origCpus();
    return Array.from({ length: Math.max(c.length, 2 * threads) }, (_, i) => c[i % c.length]);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the threaded wasm backend failed to initialise');
    await tf.ready();
  } finally {
    URL.createObjectURL = origCreate;
    os.cpus = origCpus;
  }
  // workers start only after the main thread handles their 'loaded' message: yield until they run
  const pt = pool();
  const want = wasm.getThreadsCount() - 1;
  const running = (): boolean => !!pt && pt.runningWorkers.length >= want && pt.runningWorkers.every((w) => w.loaded && !w.runPthread);
  for (let i = 0; i < 400 && pt && !running(); i++) await new Promise((r) => setTimeout(r, 5));
  if (pt && !running()) throw new Error('wasm threads did not start');
  // emscripten preloads a pool of 8 workers, each a Node isolate (~10 MB resident); XNNPACK's
  // thread pool uses threads − 1 of them for good, so the idle rest are let go (issue 15: memory)
  for (const w of pt?.unusedWorkers.splice(0) ?? []) void w.terminate();
  return wasm.getThreadsCount();
}

/** Stop the wasm worker threads (they would keep the process alive). */
export function terminateWasmThreads(): void {
  pool()?.terminateAllThreads();
}
