/**
 * Kernel replacements and additions for the tfjs wasm backend (4.22), installed once by
 * initBackend('wasm'):
 * - Slice / Unpack / SplitV: the stock kernels copy the *whole* input out of the wasm heap for
 *   every slice (unstacking a [64,256,256] tensor took 117 ms); these read the heap in place
 *   (2.3 ms). They make per-slice batched matMuls (ops/matmul.ts) worthwhile.
 * - UnsortedSegmentSum: missing on wasm, so tf.gather had no gradient.
 * - Identity: the stock kernel copies the data, and tfjs clones (Identity) every tensor a
 *   gradient saves for backprop, so training held each saved activation twice (~400 MiB extra
 *   for Qwen2.5-0.5B at 64 tokens). Tensors are immutable, so the clone shares the data and
 *   counts a reference, as tfjs's cpu backend and the wasm Reshape do.
 * (Comparisons with broadcasting — Equal in the gradient of every logSumExp — are replaced in
 * ops/wasm-compare.ts.)
 */
import * as tf from '@tensorflow/tfjs';

interface HeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: tf.DataId): void;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}
interface KernelArgs {
  inputs: Record<string, tf.TensorInfo>;
  attrs: Record<string, unknown>;
  backend: HeapBackend;
}
type Kernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

/** Copy the box `begin`…`begin+size` of a row-major tensor of `shape` from `x` into `out`. */
export function copyBox(x: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }, shape: number[], begin: number[], size: number[], out: { set(a: ArrayLike<number>, o: number): void } & Record<number, number>): void {
  const rank = shape.length;
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let i = rank - 2; i >= 0; i--) strides[i] = strides[i + 1] * shape[i + 1];
  let d = rank - 1;
  let inner = 1;
  while (d > 0 && size[d] === shape[d]) {
    inner *= shape[d];
    d--;
  }
  const run = inner * size[d];
  let base = 0;
  for (let i = 0; i < rank; i++) base += begin[i] * strides[i];
  let outer = 1;
  for (let i = 0; i < d; i++) outer *= size[i];
  const idx = new Array<number>(d).fill(0);
  let o = 0;
  for (let n = 0; n < outer; n++) {
    let off = base;
    for (let i = 0; i < d; i++) off += idx[i] * strides[i];
    if (run >= 64) out.set(x.subarray(off, off + run), o);
    else for (let j = 0; j < run; j++) out[o + j] = x[off + j];
    o += run;
    for (let i = d - 1; i >= 0; i--) {
      if (++idx[i] < size[i]) break;
      idx[i] = 0;
    }
  }
}

let installed = false;

/** Register the replacements on the wasm backend (idempotent). */
export function installWasmKernels(): void {
  if (installed) return;
  installed = true;
  const orig = Object.fromEntries(['Slice', 'Unpack', 'SplitV', 'Identity'].map((k) => [k, tf.getKernel(k, 'wasm')!.kernelFunc as unknown as Kernel]));
  const heap = (b: HeapBackend, t: tf.TensorInfo) => b.typedArrayFromHeap(t) as Float32Array;

  const slice: Kernel = (args) => {
    const { x } = args.inputs;
    if (x.dtype === 'string') return orig.Slice(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
    const out = args.backend.makeOutput(size, x.dtype);
    if (size.some((v) => v === 0)) return out;
    copyBox(heap(args.backend, x), x.shape, begin, size, heap(args.backend, out));
    return out;
  };
  const unpack: Kernel = (args) => {
    const x = args.inputs.value;
    if (x.dtype === 'string') return orig.Unpack(args);
    const rank = x.shape.length;
    const axis = ((args.attrs.axis as number) + rank) % rank;
    const outShape = x.shape.filter((_, i) => i !== axis);
    const size = x.shape.slice();
    size[axis] = 1;
    const outs = Array.from({ length: x.shape[axis] }, () => args.backend.makeOutput(outShape, x.dtype));
    const xv = heap(args.backend, x); // views only after every allocation: the heap may grow
    const begin = new Array<number>(rank).fill(0);
    outs.forEach((o, i) => {
      begin[axis] = i;
      copyBox(xv, x.shape, begin, size, heap(args.backend, o));
    });
    return outs;
  };
  const splitV: Kernel = (args) => {
    const { x } = args.inputs;
    if (x.dtype === 'string') return orig.SplitV(args);
    const ax = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, args.attrs.numOrSizeSplits as number[] | number, ax);
    const outs = sizes.map((s) => {
      const sh = x.shape.slice();
      sh[ax] = s;
      return args.backend.makeOutput(sh, x.dtype);
    });
    const xv = heap(args.backend, x);
    const begin = new Array<number>(x.shape.length).fill(0);
    outs.forEach((o) => {
      copyBox(xv, x.shape, begin, o.shape, heap(args.backend, o));
      begin[ax] += o.shape[ax];
    });
    return outs;
  };
  const segmentSum: Kernel = (args) => {
    const { x, segmentIds } = args.inputs;
    const numSegments = args.attrs.numSegments as number;
    const n = tf.util.sizeFromShape(segmentIds.shape);
    const inner = n === 0 ? 0 : tf.util.sizeFromShape(x.shape) / n;
    const out = args.backend.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
    const o = heap(args.backend, out);
    const xv = heap(args.backend, x);
    const ids = args.backend.typedArrayFromHeap(segmentIds) as Int32Array;
    o.fill(0);
    for (let i = 0; i < n; i++) {
      const s = ids[i];
      if (s < 0 || s >= numSegments) continue;
      for (let j = 0; j < inner; j++) o[s * inner + j] += xv[i * inner + j];
    }
    return out;
  };
  const register = (kernelName: string, f: Kernel): void => {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: f as unknown as tf.KernelFunc });
  };
  register('Slice', slice);
  register('Unpack', unpack);
  register('SplitV', splitV);
  register('UnsortedSegmentSum', segmentSum);
  register('Identity', (args) => {
    const x = args.inputs.x;
    if (x.dtype === 'string') return orig.Identity(args);
    args.backend.incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  });
}
