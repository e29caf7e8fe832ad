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

/** Reconstruct a secret of `length` bytes from at least threshold shares (Lagrange at 0). */
export function combineShares(shares: readonly Share[], length: number): Uint8Array {
  if (shares.length === 0) throw new RangeError('combineShares: no shares');
  if (!Number.isInteger(length) || length < 1 || length > 64) throw new RangeError(`combineShares: length must be 1–64 bytes, got ${length}`);
  if (new Set(shares.map((s) => s.x)).size !== shares.length) throw new RangeError('combineShares: duplicate share ids');
  // Lagrange basis at 0: ℓᵢ = Πⱼ≠ᵢ xⱼ / Πⱼ≠ᵢ (xⱼ − xᵢ). The ids are small integers, so the
  // products are exact BigInts (no reduction) and the numerators are X / xᵢ with X = Π xⱼ; the
  // m denominators share one modular inverse (batch inversion), not one extended Euclid each.
  const m = shares.length;
  const xs = shares.map((s) => s.x);
  let X = 1n;
  for (const x of xs) X *= BigInt(x);
  const dens = xs.map((xi, i) => {
    let den = 1n;
    for (let j = 0; j < m; j++) if (j !== i) den *= BigInt(xs[j] - xi);
    return mod(den);
  });
  const prefix: bigint[] = new Array<bigint>(m + 1);
  prefix[0] = 1n;
  for (let i = 0; i < m; i++) prefix[i + 1] = reduce(prefix[i] * dens[i]);
  let inv = inverse(prefix[m]); // = Π denᵢ⁻¹
  let secret = 0n;
  for (let i = m - 1; i >= 0; i--) {
    const invDen = reduce(inv * prefix[i]);
    inv = reduce(inv * dens[i]);
    const num = mod(X / BigInt(xs[i]));
    secret = reduce(secret + reduce(reduce(shares[i].y * num) * invDen));
  }
  if (secret >> BigInt(8 * length) !== 0n) throw new RangeError('combineShares: the shares do not reconstruct a secret of that length (too few or corrupt shares)');
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(secret & 0xffn);
    secret >>= 8n;
  }
  return out;
}
