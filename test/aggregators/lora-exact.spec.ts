import assert from 'node:assert/strict';
import { nextGaussian, seededRng } from '../../model/index.js';
import { exactDeltaW, fedIt, symmetricEigen, type LoraFactors } from '../../aggregators/index.js';

const OUT = 24;
const IN = 40;

function factors(rank: number, weight: number, seed: number): LoraFactors {
  const rng = seededRng(seed);
  const g = (n: number): Float32Array => Float32Array.from({ length: n }, () => nextGaussian(rng));
  return { a: g(rank * IN), b: g(OUT * rank), rank, weight };
}

/** B A for row-major B [out, r], A [r, in], in float64. */
function product(b: Float32Array, a: Float32Array, r: number): Float64Array {
  const w = new Float64Array(OUT * IN);
  for (let o = 0; o < OUT; o++) for (let k = 0; k < r; k++) for (let c = 0; c < IN; c++) w[o * IN + c] += b[o * r + k] * a[k * IN + c];
  return w;
}

function trueMean(fs: LoraFactors[]): Float64Array {
  const total = fs.reduce((s, f) => s + f.weight, 0);
  const w = new Float64Array(OUT * IN);
  fs.forEach((f) => product(f.b, f.a, f.rank).forEach((v, i) => (w[i] += (f.weight / total) * v)));
  return w;
}

const frob = (x: Float64Array, y: Float64Array): number => Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]) ** 2, 0));
const norm = (x: Float64Array): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0));

describe('aggregators/lora-exact', () => {
  it('exact ΔW equals the true average when the stacked rank fits, even with mixed ranks', () => {
    const fs = [factors(2, 1, 1), factors(3, 2, 2), factors(1, 5, 3)]; // R = 6
    const want = trueMean(fs);
    const r = exactDeltaW(fs, OUT, IN, 6);
    assert.ok(frob(product(r.b, r.a, 6), want) < 1e-5 * norm(want), `residual ${frob(product(r.b, r.a, 6), want)}`);
    // FedIT is not the average of the products
    const f = fedIt(fs, OUT, IN);
    assert.ok(frob(product(f.b, f.a, f.rank), want) > 0.1 * norm(want));
  });

  it('is the best rank-r approximation when it does not fit (Eckart–Young residual)', () => {
    const fs = [factors(4, 1, 4), factors(4, 1, 5), factors(4, 2, 6)]; // R = 12 > r = 4
    const want = trueMean(fs);
    const r = exactDeltaW(fs, OUT, IN, 4);
    const residual = frob(product(r.b, r.a, 4), want);
    const tail = Math.sqrt(Array.from(r.singularValues).slice(4).reduce((s, v) => s + v * v, 0));
    const all = Math.sqrt(Array.from(r.singularValues).reduce((s, v) => s + v * v, 0));
    assert.ok(Math.abs(all - norm(want)) < 1e-6 * norm(want), 'singular values carry all of ‖ΔW‖');
    assert.ok(Math.abs(residual - tail) < 1e-5 * norm(want), `residual ${residual} vs tail ${tail}`);
    const f = fedIt(fs, OUT, IN);
    assert.ok(residual < frob(product(f.b, f.a, f.rank), want));
  });

  it('FedIT zero-pads mixed ranks and averages by weight (hand-checked)', () => {
    const f1: LoraFactors = { a: new Float32Array(IN).fill(1), b: new Float32Array(OUT).fill(2), rank: 1, weight: 1 };
    const f2: LoraFactors = { a: new Float32Array(2 * IN).fill(3), b: new Float32Array(OUT * 2).fill(4), rank: 2, weight: 3 };
    const r = fedIt([f1, f2], OUT, IN);
    assert.equal(r.rank, 2);
    assert.equal(r.a[0], 0.25 * 1 + 0.75 * 3);
    assert.equal(r.a[IN], 0.75 * 3);
    assert.equal(r.b[0], 0.25 * 2 + 0.75 * 4);
    assert.equal(r.b[1], 0.75 * 4);
  });

  it('Jacobi eigen-decomposition reconstructs a symmetric matrix', () => {
    const n = 7;
    const rng = seededRng(9);
    const x = Float64Array.from({ length: n * n }, () => nextGaussian(rng));
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = x[i * n + j] + x[j * n + i];
    const { values, vectors } = symmetricEigen(s, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let v = 0;
      for (let k = 0; k < n; k++) v += vectors[i * n + k] * values[k] * vectors[j * n + k];
      assert.ok(Math.abs(v - s[i * n + j]) < 1e-9);
    }
  });

  it('rejects mismatched shapes and weights', () => {
    assert.throws(() => exactDeltaW([{ a: new Float32Array(3), b: new Float32Array(OUT), rank: 1, weight: 1 }], OUT, IN, 1), /shapes do not match/);
    assert.throws(() => fedIt([{ ...factors(1, 1, 1), weight: 0 }], OUT, IN), /weight must be positive/);
    assert.throws(() => exactDeltaW([factors(1, 1, 1)], OUT, IN, 0), /rank must be a positive integer/);
  });
});
