/**
 * A tight (ε, δ) accountant for T compositions of the Poisson-subsampled Gaussian mechanism,
 * by its privacy loss distribution (PLD; the privacy random variable of Gopi, Lee & Wutschitz
 * 2021), discretised on a lattice and composed by one FFT.
 *
 * Neighbouring datasets differ by adding or removing one record (the relation of rdp.ts). With
 * sensitivity 1 and noise σ, one step compares N(0, σ²) with the mixture M = (1−q)N(0, σ²) + qN(1, σ²):
 *   remove: P = M, Q = N(0, σ²), loss L(x) = log(1 − q + q·e^{(2x−1)/(2σ²)}), x ~ P (the pair rdp.ts bounds);
 *   add:    P = N(0, σ²), Q = M, loss −L(x), x ~ P.
 * δ(ε) = E_P[(1 − e^{ε−L})₊] (+ the mass of L = +∞) in each direction; the answer is the worse one.
 *
 * Pessimism. One step is replaced by a dominating pair supported on the lattice hℤ ∪ {+∞}
 * ("connect the dots", Doroshenko et al. 2022): the P- and Q-mass of the loss in each cell
 * (ℓ_j, ℓ_{j+1}] is split between its two end points so that both masses are kept, which makes
 * the pair's δ(ε) the chord of the true (convex in e^ε) curve between lattice points: equal at
 * them, above it in between, hence never below it, with an error of second order in h. Loss
 * below the lattice is moved up to its first point and loss above it goes to +∞. Compositions
 * of dominating pairs dominate (Zhu, Dong & Wang 2022), so the T-fold convolution bounds δ from
 * above. The convolution is circular over N = 2^log2Size points covering a window [a, b] of the
 * composed loss chosen by Chernoff bounds: mass wrapping in from below lands higher (so only
 * adds to δ), and the mass above the window is bounded by a Chernoff bound on the discrete pmf
 * itself and added to δ, with a norm-wise estimate of the FFT's rounding error (worst-case signs;
 * ~1e-16 to 1e-11 depending on T and N). So `prvDelta` is an upper bound on δ(ε) and `prvEpsilon`
 * an upper bound on ε(δ), up to that floating-point estimate, which is not a proof. The allowance
 * makes ε looser for δ ≲ 1e-11, and `prvEpsilon` returns Infinity when it alone exceeds δ.
 *
 * Grid: the single step is tabulated over x ∈ [−12σ, 1 + 12σ] (the Gaussian mass beyond is
 * < 2e-33); the window keeps all but 1e-4·δ/T of the composed loss above and 1e-4·δ below;
 * h = window / N, about 3e-5 for the DP-SGD MNIST setting at the default N = 2^18, where ε
 * moves by < 1e-5 from N = 2^18 to 2^20.
 */
import { smallestSigma } from './calibrate.js';
import { fft } from './fft.js';
import { logErfc } from './special.js';

/** Which neighbour relation direction to account for; the accountant takes the worse of the two. */
export type PrvDirection = 'remove' | 'add';

/** The mechanism: sampling rate q, noise multiplier σ, `steps` compositions. */
export interface PrvMechanism {
  q: number;
  sigma: number;
  steps: number;
  /** log2 of the lattice size N (default 18, so 262,144 points; 12 … 24). */
  log2Size?: number;
}

const SPAN = 12; // x range in σ either side of the two Gaussians' means
const Z = 6; // |z| up to which cell masses come from quadrature, beyond from the tails
const GL_X = [0, 0.5384693101056831, -0.5384693101056831, 0.906179845938664, -0.906179845938664];
const GL_W = [0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891, 0.2369268850561891];
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const LOG_TAIL_Z = Math.log(0.5) + logErfc(Z / Math.SQRT2);

/** log Φ̄(z) = log P(N(0,1) > z). */
function logTail(z: number): number {
  if (z === Infinity) return -Infinity;
  return Math.log(0.5) + logErfc(z / Math.SQRT2);
}

/** P(N(0,1) ∈ [zl, zr]): 5-point Gauss–Legendre panels of width ≤ 0.05 on |z| ≤ 6, tail differences beyond. */
function normalMass(zl: number, zr: number): number {
  if (!(zr > zl)) return 0;
  let m = 0;
  if (zl < -Z) {
    const lo = logTail(-Math.min(zr, -Z));
    m += Math.exp(lo) * -Math.expm1(logTail(-zl) - lo);
  }
  if (zr > Z) {
    const lo = zl > Z ? logTail(zl) : LOG_TAIL_Z;
    m += Math.exp(lo) * -Math.expm1(logTail(zr) - lo);
  }
  const l = Math.max(zl, -Z);
  const r = Math.min(zr, Z);
  if (r > l) {
    const panels = Math.ceil((r - l) / 0.05);
    const w = (r - l) / panels;
    for (let k = 0; k < panels; k++) {
      const mid = l + (k + 0.5) * w;
      for (let g = 0; g < 5; g++) {
        const z = mid + (GL_X[g] * w) / 2;
        m += ((GL_W[g] * w) / 2) * INV_SQRT_2PI * Math.exp(-0.5 * z * z);
      }
    }
  }
  return m;
}

/** The privacy loss log(1 − q + q·e^{(2x−1)/(2σ²)}) of "remove" at x. */
function lossAt(q: number, sigma: number, x: number): number {
  const t = (2 * x - 1) / (2 * sigma * sigma);
  return t > 0 ? t + Math.log(q + (1 - q) * Math.exp(-t)) : Math.log1p(q * Math.expm1(t));
}

/** Its inverse: the x at which the "remove" loss equals ℓ (−∞ below log(1 − q)). */
function xAt(q: number, sigma: number, l: number): number {
  if (l === Infinity) return Infinity;
  const v = l > 0 ? l + Math.log1p(-(1 - q) * Math.exp(-l)) - Math.log(q) : Math.log((Math.expm1(l) + q) / q);
  return Number.isNaN(v) ? -Infinity : 0.5 + sigma * sigma * v;
}

interface Pmf {
  p: Float64Array; // P-mass at lattice points (iLo + i)·h
  iLo: number;
  h: number;
  pInf: number; // P-mass at loss +∞
}

/** One step's dominating pair on the lattice points iLo … iHi (connect the dots, see above). */
function singleStep(q: number, sigma: number, dir: PrvDirection, h: number, iLo: number, iHi: number): Pmf {
  const n = iHi - iLo + 1;
  // masses of the loss interval (la, lb] under P and Q, via the x interval it comes from
  const masses = (la: number, lb: number): [number, number] => {
    const [xl, xr] = dir === 'remove' ? [xAt(q, sigma, la), xAt(q, sigma, lb)] : [xAt(q, sigma, -lb), xAt(q, sigma, -la)];
    const m0 = normalMass(xl / sigma, xr / sigma);
    const mix = (1 - q) * m0 + q * normalMass((xl - 1) / sigma, (xr - 1) / sigma);
    return dir === 'remove' ? [mix, m0] : [m0, mix];
  };
  const p = new Float64Array(n);
  p[0] = masses(-Infinity, iLo * h)[0];
  const split = -Math.expm1(-h); // 1 − e^{−h}
  for (let j = 0; j + 1 < n; j++) {
    const l = (iLo + j) * h;
    const [pm, qm] = masses(l, l + h);
    // P-mass at the upper end so that the P- and Q-mass of the cell are both kept
    const up = Math.min(pm, Math.max(0, (pm - Math.exp(l) * qm) / split));
    p[j + 1] += up;
    p[j] += pm - up;
  }
  const top = iHi * h;
  const [pa, qa] = masses(top, Infinity);
  const atTop = Math.min(pa, Math.exp(top) * qa);
  p[n - 1] += atTop;
  return { p, iLo, h, pInf: pa - atTop };
}

/** log E[e^{λL}; L finite] of a lattice pmf. */
function logMgf(pmf: Pmf, lambda: number): number {
  let max = -Infinity;
  for (let i = 0; i < pmf.p.length; i++) if (pmf.p[i] > 0) max = Math.max(max, lambda * (pmf.iLo + i) * pmf.h);
  let s = 0;
  for (let i = 0; i < pmf.p.length; i++) if (pmf.p[i] > 0) s += pmf.p[i] * Math.exp(lambda * (pmf.iLo + i) * pmf.h - max);
  return max + Math.log(s);
}

const LAMBDAS = Array.from({ length: 101 }, (_, k) => 2 ** ((k - 50) / 4));

/** The T-fold composed pmf over the window [A·h, (A + N)·h), with the δ added for what lies outside. */
interface Composed {
  c: Float64Array;
  A: number;
  h: number;
  base: number; // mass at +∞ + Chernoff bound above the window + rounding estimate
}

function compose(q: number, sigma: number, T: number, dir: PrvDirection, tol: number, log2N: number): Composed {
  const sign = dir === 'remove' ? 1 : -1;
  const ends = [sign * lossAt(q, sigma, -SPAN * sigma), sign * lossAt(q, sigma, sign > 0 ? 1 + SPAN * sigma : SPAN * sigma)];
  const lo = Math.min(...ends);
  const hi = Math.min(Math.max(...ends), 600);
  // coarse pass for the window
  const h0 = (hi - lo) / 8190;
  const coarse = singleStep(q, sigma, dir, h0, Math.floor(lo / h0), Math.ceil(hi / h0));
  const logTolHi = Math.log(tol / T);
  let b = Infinity;
  let a = -Infinity;
  for (const lam of LAMBDAS) {
    b = Math.min(b, (T * logMgf(coarse, lam) - logTolHi) / lam);
    a = Math.max(a, (Math.log(tol) - T * logMgf(coarse, -lam)) / lam);
  }
  b = Math.min(b, T * hi);
  a = Math.max(a, T * lo);
  const top = Math.max(lo + h0, Math.min(hi, b));
  const N = 2 ** log2N;
  const h = Math.max(b - a, top - lo) / (N - 4);
  const pmf = singleStep(q, sigma, dir, h, Math.floor(lo / h), Math.ceil(top / h));
  const A = Math.floor(a / h) - 1;
  // one FFT, the T-th power of each coefficient, one inverse FFT
  const re = new Float64Array(N);
  const im = new Float64Array(N);
  re.set(pmf.p);
  fft(re, im);
  let pow1 = 0; // Σ|z|^{2(T−1)}, Σ|z|^{2T}: the FFT's rounding error, see below
  let pow2 = 0;
  for (let k = 0; k < N; k++) {
    const r = Math.hypot(re[k], im[k]);
    if (r === 0) continue;
    const theta = T * Math.atan2(im[k], re[k]);
    const rT = Math.exp(T * Math.log(r));
    pow1 += (rT / r) ** 2;
    pow2 += rT * rT;
    re[k] = rT * Math.cos(theta);
    im[k] = rT * Math.sin(theta);
  }
  fft(re, im, true);
  const c = new Float64Array(N);
  const shift = (((T * pmf.iLo - A) % N) + N) % N;
  for (let pos = 0; pos < N; pos++) c[(pos + shift) % N] = Math.max(0, re[pos]);
  // Chernoff bound on the composed mass at or above the window's top, λ near the coarse optimum
  const B = (A + N) * h;
  let best = LAMBDAS[0];
  for (const lam of LAMBDAS) if (T * logMgf(coarse, lam) - lam * B < T * logMgf(coarse, best) - best * B) best = lam;
  let tail = Infinity;
  for (const f of [0.5, 0.8, 1, 1.25, 2]) tail = Math.min(tail, Math.exp(T * logMgf(pmf, best * f) - best * f * B));
  const pInfT = -Math.expm1(T * Math.log1p(-Math.min(pmf.pInf, 1)));
  // rounding: an error of ~4·2⁻⁵²·log₂N·‖p‖₂ per coefficient (rms) grows to T|z|^{T−1} times that
  // in z^T, plus the inverse transform's own; Σ|error| over the window ≤ the l2 norms below
  let sq = 0;
  for (const x of pmf.p) sq += x * x;
  const rounding = 4 * 2 ** -52 * log2N * (T * Math.sqrt(sq * pow1) + Math.sqrt(pow2));
  return { c, A, h, base: pInfT + Math.min(1, tail) + rounding };
}

/** δ(ε) of a composed pmf. */
function deltaOf(d: Composed, epsilon: number): number {
  let s = d.base;
  for (let k = d.c.length - 1; k >= 0; k--) {
    const l = (d.A + k) * d.h;
    if (l <= epsilon) break;
    s += d.c[k] * -Math.expm1(epsilon - l);
  }
  return Math.min(1, s);
}

/** The smallest ε ≥ 0 with δ(ε) ≤ delta (Infinity if the window's own δ already exceeds it). */
function epsilonOf(d: Composed, delta: number): number {
  if (d.base >= delta) return Infinity;
  let s0 = 0; // Σ_{ℓ > ℓ_k} c
  let r = 0; // Σ_{ℓ > ℓ_k} c·e^{ℓ_k − ℓ}
  const eh = Math.exp(-d.h);
  for (let k = d.c.length - 1; k >= 0; k--) {
    const l = (d.A + k) * d.h;
    // on (ℓ_k, ℓ_{k+1}]: δ(ε) = base + s0 − e^{ε − ℓ_k}·r
    const at = (x: number): number => d.base + s0 - Math.exp(x - l) * r;
    if (l <= 0) return at(0) <= delta ? 0 : l + Math.log((d.base + s0 - delta) / r);
    if (at(l) > delta) return Math.max(l, l + Math.log((d.base + s0 - delta) / r));
    s0 += d.c[k];
    r = (r + d.c[k]) * eh;
  }
  const l = (d.A - 1) * d.h; // below the window: every atom lies above ε
  return d.base + s0 - Math.exp(-l) * r <= delta ? 0 : Math.max(0, l + Math.log((d.base + s0 - delta) / r));
}

function check(where: string, m: PrvMechanism): number {
  if (!(m.q >= 0 && m.q <= 1)) throw new RangeError(`${where}: q must be in [0, 1], got ${m.q}`);
  if (!(m.sigma > 0) || !Number.isFinite(m.sigma)) throw new RangeError(`${where}: sigma must be a positive number, got ${m.sigma}`);
  if (!Number.isInteger(m.steps) || m.steps < 0) throw new RangeError(`${where}: steps must be a non-negative integer, got ${m.steps}`);
  const log2N = m.log2Size ?? 18;
  if (!Number.isInteger(log2N) || log2N < 12 || log2N > 24) throw new RangeError(`${where}: log2Size must be an integer in 12 … 24, got ${log2N}`);
  return log2N;
}

const DIRECTIONS: readonly PrvDirection[] = ['remove', 'add'];

/**
 * An upper bound on the ε that `steps` Poisson-subsampled Gaussian steps spend at `delta` (the
 * worse of the add and remove directions; tight to second order in the lattice step, see above).
 */
export function prvEpsilon(m: PrvMechanism & { delta: number }): number {
  const log2N = check('prvEpsilon', m);
  if (!(m.delta > 0 && m.delta < 1)) throw new RangeError(`prvEpsilon: delta must be in (0, 1), got ${m.delta}`);
  if (m.q === 0 || m.steps === 0) return 0;
  const eps = Math.max(...DIRECTIONS.map((dir) => epsilonOf(compose(m.q, m.sigma, m.steps, dir, 1e-4 * m.delta, log2N), m.delta)));
  // outside the grid's numeric range (very little noise, ε in the tens) the bound is lost: say "no bound"
  return Number.isNaN(eps) ? Infinity : eps;
}

/** An upper bound on the δ(ε) of `steps` Poisson-subsampled Gaussian steps. */
export function prvDelta(m: PrvMechanism & { epsilon: number }): number {
  const log2N = check('prvDelta', m);
  if (!(m.epsilon >= 0) || !Number.isFinite(m.epsilon)) throw new RangeError(`prvDelta: epsilon must be a finite number ≥ 0, got ${m.epsilon}`);
  if (m.q === 0 || m.steps === 0) return 0;
  const delta = Math.max(...DIRECTIONS.map((dir) => deltaOf(compose(m.q, m.sigma, m.steps, dir, 1e-14, log2N), m.epsilon)));
  return Number.isNaN(delta) ? 1 : delta;
}

/** The smallest noise multiplier (to 1e-4, relative) whose PRV ε at `delta` is within `epsilon`. */
export function prvCalibrateSigma(q: number, steps: number, epsilon: number, delta: number, log2Size = 17): number {
  return smallestSigma('prvCalibrateSigma', steps, epsilon, (sigma) => prvEpsilon({ q, sigma, steps, delta, log2Size }), { lo: 1e-2, max: 1e4, tol: 1e-4 });
}
