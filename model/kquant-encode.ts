/**
 * Quantization to ggml's K-quant layouts (Q4_K, Q5_K, Q6_K; see kquant-decode.ts), for writing
 * test and bench GGUF files. Not bit-identical with llama.cpp's quantizer, but of its kind:
 * 1. each sub-block gets the scale (and min) that minimises its squared error, by a grid search
 *    over scales with a least-squares refit of scale and min for each candidate rounding;
 * 2. the sub-block scales are quantized against one f16 super-block scale (6-bit unsigned for
 *    Q4_K/Q5_K, int8 for Q6_K), trying the neighbours of the rounded code;
 * 3. the values are requantized with the effective (stored) scales, as the decoder will see them.
 * `fast` skips both searches (steps 1 and 2): each sub-block takes its min/max scale and the
 * rounded scale codes, ~50× quicker, a little less accurate (for writing bench files of 0.5B+).
 */
import { fromHalf, toHalf } from './fp16.js';
import { Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, QK_K } from './kquant-decode.js';

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/**
 * Best x ≈ a·L − m (a ≥ 0, m ≥ 0, L in [0, nmax]) for `n` values of x from `s`: the grid of
 * scales around (max − min)/nmax, each rounding refitted by least squares. Writes [a, m] to `fit`.
 */
function fitAsym(x: Float32Array, s: number, n: number, nmax: number, fit: Float64Array, fast: boolean): void {
  let lo = 0;
  let hi = -Infinity;
  for (let i = s; i < s + n; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  fit[0] = 0;
  fit[1] = 0 - lo; // never −0
  if (!(hi > lo)) return;
  if (fast) {
    fit[0] = (hi - lo) / nmax;
    return;
  }
  let best = Infinity;
  for (let k = -10; k <= 10; k++) {
    const iscale = (nmax + 0.1 * k) / (hi - lo);
    let sl = 0, sl2 = 0, sx = 0, slx = 0;
    for (let i = s; i < s + n; i++) {
      const l = clamp(Math.round(iscale * (x[i] - lo)), 0, nmax);
      sl += l; sl2 += l * l; sx += x[i]; slx += l * x[i];
    }
    const det = n * sl2 - sl * sl;
    if (det <= 0) continue;
    let a = (n * slx - sl * sx) / det;
    let c = (sx - a * sl) / n; // x ≈ a·L + c
    if (c > 0) { c = 0; a = slx / sl2; }
    if (!(a > 0)) continue;
    let err = 0;
    for (let i = s; i < s + n; i++) {
      const l = clamp(Math.round((x[i] - c) / a), 0, nmax);
      const e = a * l + c - x[i];
      err += e * e;
    }
    if (err < best) { best = err; fit[0] = a; fit[1] = 0 - c; }
  }
}

/** Best x ≈ a·L (a signed, L in [−32, 31]) for `n` values of x from `s`. */
function fitSym(x: Float32Array, s: number, n: number, fast: boolean): number {
  let vmax = 0;
  for (let i = s; i < s + n; i++) if (Math.abs(x[i]) > Math.abs(vmax)) vmax = x[i];
  if (vmax === 0) return 0;
  if (fast) return vmax / -32; // the value of largest magnitude codes to −32

  let best = Infinity;
  let bestA = 0;
  for (const sign of [1, -1]) {
    for (let k = 0; k <= 16; k++) {
      const a0 = vmax / (sign * (28 + 0.25 * k));
      let sl2 = 0, slx = 0;
      for (let i = s; i < s + n; i++) {
        const l = clamp(Math.round(x[i] / a0), -32, 31);
        sl2 += l * l; slx += l * x[i];
      }
      if (sl2 === 0) continue;
      const a = slx / sl2;
      let err = 0;
      for (let i = s; i < s + n; i++) {
        const e = a * clamp(Math.round(x[i] / a), -32, 31) - x[i];
        err += e * e;
      }
      if (err < best) { best = err; bestA = a; }
    }
  }
  return bestA;
}

/** Squared error of sub-block [s, s+n) coded with effective scale d1 and min m1 (codes to L). */
function codeAsym(x: Float32Array, s: number, n: number, nmax: number, d1: number, m1: number, L: Uint8Array): number {
  let err = 0;
  for (let i = s; i < s + n; i++) {
    const l = d1 > 0 ? clamp(Math.round((x[i] + m1) / d1), 0, nmax) : 0;
    L[i - s] = l;
    const e = Math.fround(d1 * l - m1) - x[i];
    err += e * e;
  }
  return err;
}

/**
 * Quantize 256 values of x from `s` to Q4_K (nmax 15) or Q5_K (nmax 31) codes: writes f16 d and
 * dmin, the packed scales at `out[p + 4]` and the codes L[256]; the caller packs the quants.
 */
function encodeScalesMins(x: Float32Array, s: number, nmax: number, out: Uint8Array, p: number, L: Uint8Array, fast: boolean): void {
  const a = new Float64Array(8);
  const m = new Float64Array(8);
  const fit = new Float64Array(2);
  for (let j = 0; j < 8; j++) {
    fitAsym(x, s + 32 * j, 32, nmax, fit, fast);
    a[j] = fit[0];
    m[j] = fit[1];
  }
  const dh = toHalf(Math.max(...a) / 63);
  const mh = toHalf(Math.max(...m) / 63);
  const d = fromHalf(dh);
  const dmin = fromHalf(mh);
  out[p] = dh & 0xff; out[p + 1] = dh >>> 8;
  out[p + 2] = mh & 0xff; out[p + 3] = mh >>> 8;
  const sc = p + 4;
  const tmp = new Uint8Array(32);
  for (let j = 0; j < 8; j++) {
    const ls0 = d > 0 ? clamp(Math.round(a[j] / d), 0, 63) : 0;
    const lm0 = dmin > 0 ? clamp(Math.round(m[j] / dmin), 0, 63) : 0;
    // the rounded codes first, so ties keep them; then their neighbours
    let best = codeAsym(x, s + 32 * j, 32, nmax, Math.fround(d * ls0), Math.fround(dmin * lm0), tmp);
    let bls = ls0, blm = lm0;
    for (let ls = Math.max(0, ls0 - 1); !fast && ls <= Math.min(63, ls0 + 1); ls++) {
      for (let lm = Math.max(0, lm0 - 1); lm <= Math.min(63, lm0 + 1); lm++) {
        const err = codeAsym(x, s + 32 * j, 32, nmax, Math.fround(d * ls), Math.fround(dmin * lm), tmp);
        if (err < best) { best = err; bls = ls; blm = lm; }
      }
    }
    codeAsym(x, s + 32 * j, 32, nmax, Math.fround(d * bls), Math.fround(dmin * blm), L.subarray(32 * j, 32 * j + 32));
    if (j < 4) {
      out[sc + j] = bls;
      out[sc + j + 4] = blm;
    } else {
      out[sc + j + 4] = (bls & 0x0f) | ((blm & 0x0f) << 4);
      out[sc + j - 4] |= (bls >>> 4) << 6;
      out[sc + j] |= (blm >>> 4) << 6;
    }
  }
}

function checkLength(fn: string, x: Float32Array): number {
  if (x.length % QK_K !== 0) throw new RangeError(`${fn}: x has ${x.length} values, not a multiple of ${QK_K}`);
  return x.length / QK_K;
}

/** Q4_K tensor bytes (144 per 256 values) from values; length must be a multiple of 256. `fast`: no scale search. */
export function encodeQ4K(x: Float32Array, fast = false): Uint8Array {
  const nb = checkLength('encodeQ4K', x);
  const out = new Uint8Array(nb * Q4_K_BYTES);
  const L = new Uint8Array(QK_K);
  for (let b = 0; b < nb; b++) {
    const p = b * Q4_K_BYTES;
    encodeScalesMins(x, b * QK_K, 15, out, p, L, fast);
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) out[p + 16 + 32 * g + l] = L[64 * g + l] | (L[64 * g + 32 + l] << 4);
    }
  }
  return out;
}

/** Q5_K tensor bytes (176 per 256 values) from values; length must be a multiple of 256. `fast`: no scale search. */
export function encodeQ5K(x: Float32Array, fast = false): Uint8Array {
  const nb = checkLength('encodeQ5K', x);
  const out = new Uint8Array(nb * Q5_K_BYTES);
  const L = new Uint8Array(QK_K);
  for (let b = 0; b < nb; b++) {
    const p = b * Q5_K_BYTES;
    encodeScalesMins(x, b * QK_K, 31, out, p, L, fast);
    for (let j = 0; j < 8; j++) {
      for (let l = 0; l < 32; l++) if (L[32 * j + l] > 15) out[p + 16 + l] |= 1 << j;
    }
    for (let g = 0; g < 4; g++) {
      for (let l = 0; l < 32; l++) out[p + 48 + 32 * g + l] = (L[64 * g + l] & 0x0f) | ((L[64 * g + 32 + l] & 0x0f) << 4);
    }
  }
  return out;
}

/** Q6_K tensor bytes (210 per 256 values) from values; length must be a multiple of 256. `fast`: no scale search. */
export function encodeQ6K(x: Float32Array, fast = false): Uint8Array {
  const nb = checkLength('encodeQ6K', x);
  const out = new Uint8Array(nb * Q6_K_BYTES);
  const L = new Uint8Array(QK_K); // codes + 32, in [0, 63]
  const a = new Float64Array(16);
  for (let b = 0; b < nb; b++) {
    const p = b * Q6_K_BYTES;
    const s = b * QK_K;
    let amax = 0;
    for (let j = 0; j < 16; j++) {
      a[j] = fitSym(x, s + 16 * j, 16, fast);
      amax = Math.max(amax, Math.abs(a[j]));
    }
    const dh = toHalf(amax / 127);
    const d = fromHalf(dh);
    out[p + 208] = dh & 0xff;
    out[p + 209] = dh >>> 8;
    for (let j = 0; j < 16; j++) {
      const sc0 = d > 0 ? clamp(Math.round(a[j] / d), -128, 127) : 0;
      let best = Infinity, bsc = sc0;
      for (const sc of fast ? [sc0] : [sc0, sc0 - 1, sc0 + 1]) { // the rounded code first, so ties keep it
        if (sc < -128 || sc > 127) continue;
        const e1 = Math.fround(d * sc);
        let err = 0;
        for (let i = s + 16 * j; i < s + 16 * j + 16; i++) {
          const e = Math.fround(e1 * (e1 !== 0 ? clamp(Math.round(x[i] / e1), -32, 31) : 0)) - x[i];
          err += e * e;
        }
        if (err < best) { best = err; bsc = sc; }
      }
      out[p + 192 + j] = bsc & 0xff;
      const e1 = Math.fround(d * bsc);
      for (let i = 16 * j; i < 16 * j + 16; i++) L[i] = (e1 !== 0 ? clamp(Math.round(x[s + i] / e1), -32, 31) : 0) + 32;
    }
    for (let h = 0; h < 2; h++) {
      const y = 128 * h;
      for (let l = 0; l < 32; l++) {
        const q1 = L[y + l], q2 = L[y + l + 32], q3 = L[y + l + 64], q4 = L[y + l + 96];
        out[p + 64 * h + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
        out[p + 64 * h + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
        out[p + 128 + 32 * h + l] = (q1 >>> 4) | ((q2 >>> 4) << 2) | ((q3 >>> 4) << 4) | ((q4 >>> 4) << 6);
      }
    }
  }
  return out;
}
