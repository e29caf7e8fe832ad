/**
 * LoRA-aware aggregation of one adapted matrix across devices, each sending A_k [r_k, in] and
 * B_k [out, r_k] with weight p_k (ranks may differ).
 * - fedIt: average A and B separately (the common baseline; Σ p B · Σ p A ≠ Σ p B A).
 * - exactDeltaW: the best rank-r factorisation of the true average ΔW = Σ p_k B_k A_k, via the
 *   stacked factors (ΔW = [p₁B₁ … p_KB_K] [A₁; …; A_K]), a QR of the stacked B and the SVD of the
 *   small R × in remainder (R = Σ r_k). Exact when R ≤ r; otherwise Eckart–Young optimal.
 * Row-major Float32Array in, Float32Array out; float64 inside.
 */

/** One device's factors of one matrix. */
export interface LoraFactors {
  /** [rank, in] */
  readonly a: Float32Array;
  /** [out, rank] */
  readonly b: Float32Array;
  readonly rank: number;
  readonly weight: number;
}

function checkFactors(where: string, fs: readonly LoraFactors[], out: number, inDim: number): number[] {
  if (fs.length === 0) throw new RangeError(`${where}: no factors`);
  const total = fs.reduce((s, f) => s + f.weight, 0);
  fs.forEach((f, k) => {
    if (!Number.isInteger(f.rank) || f.rank < 1) throw new RangeError(`${where}: factor ${k} has bad rank ${f.rank}`);
    if (f.a.length !== f.rank * inDim || f.b.length !== out * f.rank) throw new RangeError(`${where}: factor ${k} shapes do not match rank ${f.rank}, [${out}, ${inDim}]`);
    if (!(f.weight > 0) || !Number.isFinite(f.weight)) throw new RangeError(`${where}: factor ${k} weight must be positive, got ${f.weight}`);
  });
  return fs.map((f) => f.weight / total);
}

/** FedIT: weighted means of A and B separately; mixed ranks are zero-padded to the largest. */
export function fedIt(fs: readonly LoraFactors[], out: number, inDim: number): { a: Float32Array; b: Float32Array; rank: number } {
  const p = checkFactors('fedIt', fs, out, inDim);
  const r = Math.max(...fs.map((f) => f.rank));
  const a = new Float64Array(r * inDim);
  const b = new Float64Array(out * r);
  fs.forEach((f, k) => {
    for (let i = 0; i < f.rank * inDim; i++) a[i] += p[k] * f.a[i];
    for (let o = 0; o < out; o++) for (let j = 0; j < f.rank; j++) b[o * r + j] += p[k] * f.b[o * f.rank + j];
  });
  return { a: Float32Array.from(a), b: Float32Array.from(b), rank: r };
}

/** Symmetric eigen-decomposition by cyclic Jacobi: returns eigenvalues and column eigenvectors. */
export function symmetricEigen(m: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(m);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const total = a.reduce((s, x) => s + x * x, 0);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off += a[i * n + j] ** 2;
    if (off <= 1e-30 * total) break; // relative: scale-free
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => a[i * n + i]), vectors: v };
}

/** Best rank-`rank` factors (B [out, rank], A [rank, in]) of Σ p_k B_k A_k, with its singular values. */
export function exactDeltaW(fs: readonly LoraFactors[], out: number, inDim: number, rank: number): { a: Float32Array; b: Float32Array; singularValues: Float64Array } {
  const p = checkFactors('exactDeltaW', fs, out, inDim);
  if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`exactDeltaW: rank must be a positive integer, got ${rank}`);
  const R = fs.reduce((s, f) => s + f.rank, 0);
  // stacked Bs [out, R] (weighted) and As [R, in]
  const bs = new Float64Array(out * R);
  const as = new Float64Array(R * inDim);
  let col = 0;
  fs.forEach((f, k) => {
    for (let o = 0; o < out; o++) for (let j = 0; j < f.rank; j++) bs[o * R + col + j] = p[k] * f.b[o * f.rank + j];
    for (let i = 0; i < f.rank * inDim; i++) as[col * inDim + i] = f.a[i];
    col += f.rank;
  });
  // thin QR of Bs by modified Gram–Schmidt (twice, for orthogonality): Q [out, R], Rb [R, R]
  const q = Float64Array.from(bs);
  const rb = new Float64Array(R * R);
  let maxColumn = 0;
  for (let j = 0; j < R; j++) {
    let s = 0;
    for (let o = 0; o < out; o++) s += bs[o * R + j] ** 2;
    maxColumn = Math.max(maxColumn, Math.sqrt(s));
  }
  for (let j = 0; j < R; j++) {
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < j; i++) {
        let dot = 0;
        for (let o = 0; o < out; o++) dot += q[o * R + i] * q[o * R + j];
        rb[i * R + j] += dot;
        for (let o = 0; o < out; o++) q[o * R + j] -= dot * q[o * R + i];
      }
    }
    let norm = 0;
    for (let o = 0; o < out; o++) norm += q[o * R + j] ** 2;
    norm = Math.sqrt(norm);
    rb[j * R + j] = norm;
    for (let o = 0; o < out; o++) q[o * R + j] = norm > 1e-12 * maxColumn ? q[o * R + j] / norm : 0;
    if (!(norm > 1e-12 * maxColumn)) rb[j * R + j] = 0; // a dependent column adds nothing new
  }
  // M = Rb As [R, in]; its SVD from the eigen-decomposition of M Mᵀ [R, R]
  const m = new Float64Array(R * inDim);
  for (let i = 0; i < R; i++) for (let k = i; k < R; k++) {
    const r = rb[i * R + k];
    if (r !== 0) for (let c = 0; c < inDim; c++) m[i * inDim + c] += r * as[k * inDim + c];
  }
  const g = new Float64Array(R * R);
  for (let i = 0; i < R; i++) for (let j = i; j < R; j++) {
    let s = 0;
    for (let c = 0; c < inDim; c++) s += m[i * inDim + c] * m[j * inDim + c];
    g[i * R + j] = g[j * R + i] = s;
  }
  const { values, vectors } = symmetricEigen(g, R);
  const order = Array.from({ length: R }, (_, i) => i).sort((x, y) => values[y] - values[x]);
  const singularValues = Float64Array.from(order, (i) => Math.sqrt(Math.max(0, values[i])));
  const a = new Float32Array(rank * inDim);
  const b = new Float32Array(out * rank);
  for (let t = 0; t < Math.min(rank, R); t++) {
    const sv = singularValues[t];
    if (!(sv > 1e-12 * singularValues[0])) break; // relative cut-off: works at any scale
    const e = order[t];
    const root = Math.sqrt(sv);
    // left vector Q u (u: eigenvector of M Mᵀ), right vector Mᵀ u / σ; split σ evenly between B and A
    for (let o = 0; o < out; o++) {
      let s = 0;
      for (let i = 0; i < R; i++) s += q[o * R + i] * vectors[i * R + e];
      b[o * rank + t] = s * root;
    }
    for (let c = 0; c < inDim; c++) {
      let s = 0;
      for (let i = 0; i < R; i++) s += m[i * inDim + c] * vectors[i * R + e];
      a[t * inDim + c] = (s / sv) * root;
    }
  }
  return { a, b, singularValues };
}
