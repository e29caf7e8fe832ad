/**
 * Where a fedtune training step's memory goes (issue 15): the process's RSS after starting the
 * backend (Node, V8, tfjs and the wasm module's code), the wasm heap's size (its high-water mark:
 * a WebAssembly memory never shrinks), the tensor high-water of one step (tf.profile peakBytes),
 * the tensor bytes alive at the end of the forward pass (saved activations, plus the dequantized
 * frozen weights still alive in the forward scope), the dequantized weights measured as the
 * difference against the same forward on a float32-held base, the AdamW state, and the V8 heap.
 * Used by bench/side-by-side.ts --breakdown.
 */
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, forwardHidden, headLoss, LocalTrainer, LoraAdapter, randomBase, type TrainOptions } from '../model/index.js';
import { randomBatch } from '../model/windows.js';
import { seededRng } from '../random/rng.js';

/** Bytes of the wasm backend's WebAssembly memory, or 0 on another backend. */
export function wasmHeapBytes(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength ?? 0;
}

/** Tensor bytes alive at the end of the forward pass (before the loss), and after the step's tidy. */
function forwardBytes(base: FrozenBase, ad: LoraAdapter, tokens: Int32Array, o: TrainOptions): number {
  const b = randomBatch(tokens, o.batchSize as number, o.seqLen as number, seededRng(1), o.startId);
  let atEnd = 0;
  const before = tf.memory().numBytes;
  tf.tidy(() => {
    tf.variableGrads(() => {
      const h = forwardHidden(base, b.inputs, b.batch, { adapter: ad }).hidden;
      atEnd = tf.memory().numBytes;
      return headLoss(base, h, b.targets, b.weights);
    }, ad.trainableVariables());
  });
  return atEnd - before;
}

/** The breakdown of one step's memory, in bytes (see the file comment). */
export async function memoryBreakdown(base: FrozenBase, ad: LoraAdapter, tokens: Int32Array, o: TrainOptions): Promise<Record<string, number>> {
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  gc();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = wasmHeapBytes();
  const prof = await tf.profile(async () => {
    await new LocalTrainer(base, ad, tokens, { ...o, steps: 1 }).run();
  });
  gc();
  const mu = process.memoryUsage();
  const heapAfter = wasmHeapBytes();
  const peakRss = process.resourceUsage().maxRSS * 1024;
  // then the forward-end measurements (the float32 base is made only now, after the peaks were read)
  const fwdInt8 = forwardBytes(base, ad, tokens, o);
  const f32 = new FrozenBase(randomBase(base.config, 1), 'none');
  const adF = LoraAdapter.create(f32.config, f32.sha256, { rank: ad.config.rank, targets: [...ad.config.targets] });
  const fwdF32 = forwardBytes(f32, adF, tokens, o);
  const f32Bytes = f32.memory().bytes;
  adF.dispose();
  f32.dispose();
  const trainable = ad.trainableVariables().reduce((s, v) => s + v.size, 0);
  return {
    rssBeforeStep: rssBefore,
    wasmHeapBeforeStep: heapBefore,
    wasmHeapAfter: heapAfter,
    peakTensorBytesOfStep: prof.peakBytes,
    forwardEndTensorBytes: fwdInt8,
    forwardEndTensorBytesF32Base: fwdF32,
    dequantizedCopiesAtForwardEnd: fwdInt8 - fwdF32,
    f32BaseHeldBytes: f32Bytes,
    quantizedBaseBytes: base.memory().bytes,
    adamStateBytes: 2 * 4 * trainable,
    adapterBytes: 4 * ad.parameterCount,
    v8HeapUsed: mu.heapUsed,
    v8HeapTotal: mu.heapTotal,
    arrayBuffers: mu.arrayBuffers,
    rssAfter: mu.rss,
    peakRss,
  };
}
