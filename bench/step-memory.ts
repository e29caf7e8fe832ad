/**
 * Where a fedtune training step's memory goes (issue 15), for bench/side-by-side.ts --breakdown:
 * the process's RSS before the first step (Node, V8, tfjs and the wasm module's code, the base),
 * the V8 heap, the wasm heap's size after one step (a WebAssembly memory never shrinks, so this
 * is its high-water mark), the high-water of the tensor buffers the wasm backend allocates during
 * the step (its _malloc/_free, wrapped), the tensor bytes alive when the forward pass ends (what
 * backprop will read, plus the last layer's temporaries), the dequantized frozen weights among
 * them (the same forward on a float32-held base, subtracted), and the AdamW state.
 */
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, forwardHidden, headLoss, LocalTrainer, LoraAdapter, randomBase, type TrainOptions } from '../model/index.js';
import { randomBatch } from '../model/windows.js';
import { seededRng } from '../random/rng.js';

interface WasmModule {
  _malloc(n: number): number;
  _free(p: number): void;
  HEAPU8: Uint8Array;
}

function wasmModule(): WasmModule | undefined {
  return (tf.backend() as unknown as { wasm?: WasmModule }).wasm;
}

/** Bytes of the wasm backend's WebAssembly memory, or 0 on another backend. */
export function wasmHeapBytes(): number {
  return wasmModule()?.HEAPU8.buffer.byteLength ?? 0;
}

/** Live bytes and high-water of the wasm backend's own allocations from now on. */
export interface MallocTracker {
  live(): number;
  high(): number;
  resetHigh(): void;
}

/** Wrap the wasm module's _malloc/_free (after one call: emscripten swaps in the raw export on first use). */
export function trackMalloc(): MallocTracker {
  const w = wasmModule();
  if (!w) throw new Error('trackMalloc: the wasm backend is not running');
  w._free(w._malloc(8));
  const malloc = w._malloc.bind(w);
  const free = w._free.bind(w);
  const sizes = new Map<number, number>();
  let live = 0;
  let high = 0;
  w._malloc = (n: number): number => {
    const p = malloc(n);
    sizes.set(p, n);
    live += n;
    if (live > high) high = live;
    return p;
  };
  w._free = (p: number): void => {
    live -= sizes.get(p) ?? 0;
    sizes.delete(p);
    free(p);
  };
  return { live: () => live, high: () => high, resetHigh: () => (high = live) };
}

/** Tracked bytes alive at the end of the forward pass, above those alive before it. */
function forwardEndBytes(m: MallocTracker, base: FrozenBase, ad: LoraAdapter, tokens: Int32Array, o: TrainOptions): number {
  const b = randomBatch(tokens, o.batchSize as number, o.seqLen as number, seededRng(1), o.startId);
  let atEnd = 0;
  const before = m.live();
  tf.tidy(() => {
    tf.variableGrads(() => {
      const h = forwardHidden(base, b.inputs, b.batch, { adapter: ad }).hidden;
      atEnd = m.live();
      return headLoss(base, h, b.targets, b.weights);
    }, ad.trainableVariables());
  });
  return atEnd - before;
}

/** The breakdown of one step's memory, in bytes (see the file comment). Run with --expose-gc. */
export async function memoryBreakdown(base: FrozenBase, ad: LoraAdapter, tokens: Int32Array, o: TrainOptions): Promise<Record<string, number>> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  const m = trackMalloc();
  gc();
  const rssBeforeStep = process.memoryUsage().rss;
  const liveBefore = m.live();
  await new LocalTrainer(base, ad, tokens, { ...o, steps: 1 }).run();
  const stepTensorHigh = m.high() - liveBefore;
  gc();
  const mu = process.memoryUsage();
  const wasmHeap = wasmHeapBytes();
  const peakRss = process.resourceUsage().maxRSS * 1024;
  // then the forward-end measurements (the float32 base is made only now, after the peaks were read)
  const fwdInt8 = forwardEndBytes(m, base, ad, tokens, o);
  const f32 = new FrozenBase(randomBase(base.config, 1), 'none');
  const adF = LoraAdapter.create(f32.config, f32.sha256, { rank: ad.config.rank, targets: [...ad.config.targets] });
  const fwdF32 = forwardEndBytes(m, f32, adF, tokens, o);
  adF.dispose();
  f32.dispose();
  const trainable = ad.trainableVariables().reduce((s, v) => s + v.size, 0);
  return {
    rssBeforeStep,
    v8HeapUsed: mu.heapUsed,
    v8HeapTotal: mu.heapTotal,
    wasmHeapAfterStep: wasmHeap,
    stepTensorHighWater: stepTensorHigh,
    heapNotTensors: wasmHeap - stepTensorHigh - liveBefore,
    forwardEndTensorBytes: fwdInt8,
    dequantizedAtForwardEnd: fwdInt8 - fwdF32,
    quantizedBaseBytes: base.memory().bytes,
    adamStateBytes: 2 * 4 * trainable,
    adapterBytes: 4 * ad.parameterCount,
    peakRss,
  };
}
