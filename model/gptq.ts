/**
 * GPTQ (Frantar et al. 2023) rounding for Q4_0: quantize a matrix W [out, in] column by column,
 * pushing each column's rounding error onto the columns not yet quantized, weighted by the
 * inverse Hessian H⁻¹ of the layer's inputs (H = XᵀX over calibration activations). Block
 * scales are fixed up front from the original weights ("static groups"), each chosen to minimise
 * the block's error weighted by its inputs' energy (diag H), so the output is an ordinary Q4_0
 * array, blocks may span rows, and decoding is unchanged.
 * Columns are processed in order of decreasing H diagonal ("act-order"): the inputs that carry
 * the most energy are rounded first, while the most columns remain to absorb their error.
 */
import { fromHalf, toHalf } from './fp16.js';
import { INT4_BLOCK, q4Code, q4Scale, setNibble, type QuantizedArray } from './quant.js';

/** In-place Cholesky factorisation of a symmetric positive-definite n×n matrix (lower). */
function cholesky(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j];
    for (let k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
    if (!(d > 0)) return false;
    const l = Math.sqrt(d);
    a[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j];
      for (let k = 0; k < j; k++) s -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = s / l;
    }
    for (let k = j + 1; k < n; k++) a[j * n + k] = 0;
  }
  return true;
}

/** Inverse of a symmetric positive-definite matrix from its lower Cholesky factor. */
function inverseFromCholesky(l: Float64Array, n: number): Float64Array {
  // L⁻¹ by forward substitution, then H⁻¹ = L⁻ᵀ L⁻¹
  const li = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    li[i * n + i] = 1 / l[i * n + i];
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= l[i * n + k] * li[k * n + j];
      li[i * n + j] = s / l[i * n + i];
    }
  }
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += li[k * n + i] * li[k * n + j];
      inv[i * n + j] = inv[j * n + i] = s;
    }
  }
  return inv;
}

/**
 * Quantize W [rows, cols] (row-major) to Q4_0 with GPTQ error feedback.
 * @param h XᵀX [cols, cols] of calibration inputs (not modified).
 * @param damp fraction of the mean diagonal added to H for stability (default 0.01).
 */
export function gptqQuantizeQ4(w: Float32Array, rows: number, cols: number, h: Float64Array, damp = 0.01, block = INT4_BLOCK): QuantizedArray {
  if (w.length !== rows * cols) throw new RangeError(`gptqQuantizeQ4: w has ${w.length} values, expected ${rows}×${cols}`);
  if (h.length !== cols * cols) throw new RangeError(`gptqQuantizeQ4: h must be ${cols}×${cols}`);
  const n = cols;
  const perm = Array.from({ length: n }, (_, i) => i).sort((a, b) => h[b * n + b] - h[a * n + a]);
  const hd = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) hd[i * n + j] = h[perm[i] * n + perm[j]];
  let mean = 0;
  for (let i = 0; i < n; i++) mean += hd[i * n + i];
  mean /= n;
  const dead = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    if (hd[i * n + i] === 0) {
      dead[i] = 1; // an input that never fires: any rounding is free
      hd[i * n + i] = 1;
    }
    hd[i * n + i] += damp * (mean || 1);
  }
  if (!cholesky(hd, n)) throw new RangeError('gptqQuantizeQ4: the Hessian is not positive definite; increase damp');
  const hinv = inverseFromCholesky(hd, n);
  if (!cholesky(hinv, n)) throw new RangeError('gptqQuantizeQ4: H⁻¹ is not positive definite; increase damp');
  // upper factor U with H⁻¹ = UᵀU is the transpose of the lower factor just computed
  const u = (i: number, j: number): number => hinv[j * n + i];

  // static Q4_0 scales from the original weights
  const nb = Math.ceil(w.length / block);
  const scales = new Uint16Array(nb);
  const d = new Float64Array(nb);
  for (let b = 0; b < nb; b++) {
    const s0 = b * block;
    const e0 = Math.min(s0 + block, w.length);
    scales[b] = weightedScale(w, s0, e0, (i) => h[(i % cols) * cols + (i % cols)]);
    d[b] = fromHalf(scales[b]);
  }
  const data = new Uint8Array(nb * (block / 2)).fill(0x88);
  // work[r·n + j] is W[r, perm[j]], updated as earlier columns are rounded
  const work = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) work[r * n + j] = w[r * n + perm[j]];
  for (let j = 0; j < n; j++) {
    const ujj = u(j, j);
    for (let r = 0; r < rows; r++) {
      const idx = r * n + perm[j];
      const b = Math.floor(idx / block);
      const x = work[r * n + j];
      const db = d[b];
      const q = q4Code(x, db);
      setNibble(data, block, b, idx - b * block, q);
      if (dead[j]) continue;
      const err = (x - (q - 8) * db) / ujj;
      for (let k = j + 1; k < n; k++) work[r * n + k] -= err * u(j, k);
    }
  }
  return { kind: 'q4_0', length: w.length, block, data, scales };
}

/**
 * The Q4_0 scale of one block that minimises Σ wᵢ (xᵢ − d·(qᵢ − 8))², with wᵢ the energy of the
 * input feeding xᵢ (H's diagonal): candidates d = m / (−8 + δ) around the plain rule.
 */
export function weightedScale(x: ArrayLike<number>, start: number, end: number, weight: (i: number) => number): number {
  const plain = q4Scale(x, start, end);
  const m = -8 * fromHalf(plain);
  let best = plain;
  let bestErr = Infinity;
  for (let k = -8; k <= 24; k++) {
    const hbits = toHalf(m / (-8 + k / 8)); // δ from −1 to 3 in steps of 1/8
    const dd = fromHalf(hbits);
    let err = 0;
    for (let i = start; i < end; i++) {
      const r = x[i] - (q4Code(x[i], dd) - 8) * dd;
      err += weight(i) * r * r;
    }
    if (err < bestErr) {
      bestErr = err;
      best = hbits;
    }
  }
  return best;
}
