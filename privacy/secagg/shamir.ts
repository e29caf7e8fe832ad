/**
 * Shamir secret sharing over the prime field GF(2^521 − 1), large enough to share a 32- or
 * 64-byte secret as one field element. Share x-coordinates are the holders' positive integer
 * ids; any `threshold` shares reconstruct, fewer reveal nothing.
 */
import type { Rng } from '../../random/rng.js';

/** The field's prime, 2^521 − 1 (a Mersenne prime). */
export const SHAMIR_PRIME = (1n << 521n) - 1n;
const P = SHAMIR_PRIME;

/** One share: the polynomial evaluated at x. */
export interface Share {
  readonly x: number;
  readonly y: bigint;
}

const mod = (a: bigint): bigint => ((a % P) + P) % P;
/** a mod P for 0 ≤ a < P², by folding (2^521 ≡ 1 mod P): shifts and adds, no division. */
function reduce(a: bigint): bigint {
  let r = (a & P) + (a >> 521n);
  while (r >= P) r -= P;
  return r;
}

function randomElement(rng: Rng): bigint {
  for (;;) {
    let v = 0n;
    for (let i = 0; i < 17; i++) v = (v << 32n) | BigInt(rng.nextU32());
    v &= (1n << 521n) - 1n;
    if (v < P) return v;
  }
}

function inverse(a: bigint): bigint {
  // extended Euclid
  let [r0, r1] = [mod(a), P];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new RangeError('inverse: not invertible');
  return mod(s0);
}

function toBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** Split `secret` (at most 64 bytes) into shares for holders `ids` (distinct positive integers). */
export function splitSecret(secret: Uint8Array, ids: readonly number[], threshold: number, rng: Rng): Share[] {
  if (!(secret instanceof Uint8Array) || secret.length === 0 || secret.length > 64) throw new RangeError('splitSecret: secret must be 1–64 bytes');
  if (new Set(ids).size !== ids.length || ids.some((x) => !Number.isSafeInteger(x) || x <= 0)) throw new RangeError('splitSecret: ids must be distinct positive integers');
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > ids.length) throw new RangeError(`splitSecret: threshold must be in [1, ${ids.length}], got ${threshold}`);
  const coef = [toBigInt(secret), ...Array.from({ length: threshold - 1 }, () => randomElement(rng))];
  return ids.map((x) => {
    let y = 0n;
    const bx = BigInt(x);
    for (let i = coef.length - 1; i >= 0; i--) y = reduce(y * bx + coef[i]);
    return { x, y };
  });
}

/** True if `s` is a well-formed share: x a positive safe integer, 0 ≤ y < the field's prime. */
export function isValidShare(s: unknown): s is Share {
  if (typeof s !== 'object' || s === null) return false;
  const { x, y } = s as { x: unknown; y: unknown };
  return typeof x === 'number' && Number.isSafeInteger(x) && x > 0 && typeof y === 'bigint' && y >= 0n && y < P;
}

/**
 * The polynomial through `shares` (distinct x), as a function evaluating it anywhere (Lagrange):
 * p(at) = Σᵢ yᵢ/denᵢ · Πⱼ≠ᵢ (at − xⱼ) with denᵢ = Πⱼ≠ᵢ (xᵢ − xⱼ). The ids are small integers, so
 * the products are exact BigInts; the m denominators share one modular inverse (batch
 * inversion), computed once, and at a point outside the xs each numerator is the exact integer
 * L(at)/(at − xᵢ) with L(at) = Πⱼ (at − xⱼ): O(m) products per evaluation instead of O(m²).
 */
function polynomialThrough(shares: readonly Share[]): (at: bigint) => bigint {
  const m = shares.length;
  const xs = shares.map((s) => BigInt(s.x));
  const dens = xs.map((xi, i) => {
    let den = 1n;
    for (let j = 0; j < m; j++) if (j !== i) den *= xi - xs[j];
    return mod(den);
  });
  const prefix: bigint[] = new Array<bigint>(m + 1);
  prefix[0] = 1n;
  for (let i = 0; i < m; i++) prefix[i + 1] = reduce(prefix[i] * dens[i]);
  let inv = inverse(prefix[m]); // = Π denᵢ⁻¹
  const weights: bigint[] = new Array<bigint>(m); // yᵢ / denᵢ
  for (let i = m - 1; i >= 0; i--) {
    weights[i] = reduce(shares[i].y * reduce(inv * prefix[i]));
    inv = reduce(inv * dens[i]);
  }
  return (at) => {
    const hit = xs.indexOf(at);
    if (hit >= 0) return shares[hit].y;
    let all = 1n; // L(at), exact
    for (let j = 0; j < m; j++) all *= at - xs[j];
    let value = 0n;
    for (let i = 0; i < m; i++) value += weights[i] * mod(all / (at - xs[i])); // exact division
    return mod(value);
  };
}

function toBytes(v: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function checkShares(where: string, shares: readonly Share[], length: number): void {
  if (!Array.isArray(shares) || shares.length === 0) throw new RangeError(`${where}: no shares`);
  if (!Number.isInteger(length) || length < 1 || length > 64) throw new RangeError(`${where}: length must be 1–64 bytes, got ${length}`);
  if (!shares.every(isValidShare)) throw new RangeError(`${where}: every share needs a positive integer x and 0 ≤ y < 2^521 − 1`);
  if (new Set(shares.map((s) => s.x)).size !== shares.length) throw new RangeError(`${where}: duplicate share ids`);
}

/** Reconstruct a secret of `length` bytes from at least threshold shares (Lagrange at 0). */
export function combineShares(shares: readonly Share[], length: number): Uint8Array {
  checkShares('combineShares', shares, length);
  const secret = polynomialThrough(shares)(0n);
  if (secret >> BigInt(8 * length) !== 0n) throw new RangeError('combineShares: the shares do not reconstruct a secret of that length (too few or corrupt shares)');
  return toBytes(secret, length);
}

/** The outcome of {@link recoverSecret}: the secret and the holders whose shares were off it, or why none. */
export type Recovery = { ok: true; secret: Uint8Array; liars: number[]; tried: number } | { ok: false; reason: string; tried: number };

/** Most candidate share sets {@link recoverSecret} tries before giving up (bounds the work a liar can cause). */
export const MAX_RECOVERY_CANDIDATES = 4096;

function* combinations(n: number, r: number): Generator<number[]> {
  const c = Array.from({ length: r }, (_, i) => i);
  for (;;) {
    yield [...c];
    let i = r - 1;
    while (i >= 0 && c[i] === n - r + i) i--;
    if (i < 0) return;
    c[i]++;
    for (let j = i + 1; j < r; j++) c[j] = c[j - 1] + 1;
  }
}

/**
 * Reconstruct a secret from shares of which some may be lies (peer input). Finds the fewest
 * shares e to leave out such that all the others lie on one polynomial of degree < threshold
 * whose value at 0 is a secret of `length` bytes that `verify` (when given, e.g. a check against
 * a public key or commitment) accepts; the left-out shares' x are returned as liars. Agreement
 * alone singles out the polynomial while m − e ≥ threshold + e (m shares), so without `verify`
 * at most ⌊(m − threshold)/2⌋ liars are corrected; with `verify`, up to m − threshold. Exactly
 * `threshold` shares can only be checked (range and `verify`). Gives up after
 * `maxTries` candidate sets (default {@link MAX_RECOVERY_CANDIDATES}; a caller rebuilding many
 * secrets passes what is left of its own budget). `tried` counts the candidate sets examined.
 * Expected failures are values; misuse (malformed or duplicate shares, bad threshold or length)
 * throws.
 */
export function recoverSecret(shares: readonly Share[], threshold: number, length: number, verify?: (secret: Uint8Array) => boolean, maxTries = MAX_RECOVERY_CANDIDATES): Recovery {
  checkShares('recoverSecret', shares, length);
  if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError(`recoverSecret: threshold must be a positive integer, got ${threshold}`);
  if (!Number.isInteger(maxTries) || maxTries < 1) throw new RangeError(`recoverSecret: maxTries must be a positive integer, got ${maxTries}`);
  const m = shares.length;
  if (m < threshold) return { ok: false, reason: `${m} share(s), ${threshold} needed`, tried: 0 };
  const limit = 1n << BigInt(8 * length);
  let tried = 0;
  for (let e = 0; e <= m - threshold; e++) {
    // beyond ⌊(m − t)/2⌋ left out, agreement no longer singles out one polynomial: only `verify` can
    if (2 * e > m - threshold && !verify) break;
    for (const out of e === 0 ? [[]] : combinations(m, e)) {
      if (++tried > maxTries) return { ok: false, reason: `the shares are inconsistent and no consistent subset was found within ${maxTries} tries`, tried: maxTries };
      const left = new Set(out);
      const kept = shares.filter((_, i) => !left.has(i));
      const poly = polynomialThrough(kept.slice(0, threshold));
      if (!kept.slice(threshold).every((s) => poly(BigInt(s.x)) === s.y)) continue;
      const value = poly(0n);
      if (value >= limit) continue;
      const secret = toBytes(value, length);
      if (verify && !verify(secret)) continue;
      return { ok: true, secret, liars: out.map((i) => shares[i].x).sort((a, b) => a - b), tried };
    }
  }
  return { tried, ok: false, reason: m === threshold ? `the ${m} share(s) do not reconstruct a valid secret (one or more are corrupt, and there is no redundancy to tell which)` : `the ${m} shares are inconsistent: no ${threshold} or more of them agree on a valid secret with at most ${verify ? m - threshold : Math.floor((m - threshold) / 2)} left out` };
}
