import assert from 'node:assert/strict';
import { ExactDeltaWStrategy, type LoraSegment } from '../../aggregators/index.js';
import { seededRng } from '../../model/index.js';

/** One matrix, in 4 × out 3, rank 2: flat = Aᵀ [4, 2] then Bᵀ [2, 3]. */
const seg: LoraSegment = { inDim: 4, outDim: 3, aOffset: 0, bOffset: 8 };
const r = 2;

function product(flat: Float32Array): Float64Array {
  // W = B A with A [r, in] = (Aᵀ)ᵀ, B [out, r] = (Bᵀ)ᵀ
  const w = new Float64Array(seg.outDim * seg.inDim);
  for (let o = 0; o < seg.outDim; o++) for (let c = 0; c < seg.inDim; c++) for (let t = 0; t < r; t++) w[o * seg.inDim + c] += flat[seg.bOffset + t * seg.outDim + o] * flat[seg.aOffset + c * r + t];
  return w;
}

describe('aggregators/lora-strategy (exact ΔW)', () => {
  const rng = seededRng(9);
  const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.nextFloat() - 0.5);

  it('is exact when the devices share A (the stacked rank fits): the new B·A is the weighted mean of the B_k·A', () => {
    const global = rand(14);
    const results = [1, 3].map((w, k) => {
      const u = new Float32Array(14);
      u.set(rand(6), 8); // only B moves (FFA-LoRA-like)
      return { deviceId: `d${k}`, update: u, numExamples: w };
    });
    const out = new ExactDeltaWStrategy([seg], r).aggregate(1, global, results, []).global;
    const want = new Float64Array(12);
    results.forEach((x) => {
      const local = Float32Array.from(global, (g, i) => g + x.update[i]);
      product(local).forEach((v, i) => (want[i] += (v * x.numExamples) / 4));
    });
    product(out).forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `entry ${i}: ${v} vs ${want[i]}`));
  });

  it('keeps the global A row length (the product is what is exact), and refuses bad input', () => {
    const global = rand(14);
    const u = rand(14).map((v) => v * 0.1);
    const out = new ExactDeltaWStrategy([seg], r).aggregate(1, global, [{ deviceId: 'a', update: u, numExamples: 1 }], []).global;
    const local = Float32Array.from(global, (g, i) => g + u[i]);
    product(out).forEach((v, i) => assert.ok(Math.abs(v - product(local)[i]) < 1e-5));
    const rowLen = (f: Float32Array, t: number) => Math.sqrt([0, 1, 2, 3].reduce((s, c) => s + f[c * r + t] ** 2, 0));
    const mean = (f: Float32Array) => (rowLen(f, 0) + rowLen(f, 1)) / 2;
    assert.ok(Math.abs(rowLen(out, 0) - mean(global)) < 1e-5 && Math.abs(rowLen(out, 1) - mean(global)) < 1e-5);
    assert.throws(() => new ExactDeltaWStrategy([seg], r).aggregate(1, global, [], []), /no results/);
    assert.throws(() => new ExactDeltaWStrategy([seg], r).aggregate(1, global, [{ deviceId: 'x', update: new Float32Array(3), numExamples: 1 }], []), /expected 14/);
    assert.throws(() => new ExactDeltaWStrategy([seg], 0), /rank/);
  });
});
