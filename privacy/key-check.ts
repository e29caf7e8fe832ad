/**
 * Public keys a peer hands in, checked before they are trusted: an Ed25519 key must decode to a
 * curve point in the prime-order subgroup (so no small-order key, such as all zeros, for which
 * signatures can be forged), and an X25519 key must not be of small order (its shared secret
 * would be all zeros). Problems are values (a sentence), not throws.
 */
import { x25519 } from './secagg/masking.js';

const PROBE_SCALAR = new Uint8Array(32).fill(0x5a);

const P = 2n ** 255n - 19n;
/** Order of the prime subgroup. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a: bigint): bigint => ((a % P) + P) % P;

function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = mod(b);
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * x) % P;
    x = (x * x) % P;
  }
  return r;
}

const D = mod(-121665n * pow(121666n, P - 2n));
const D2 = (2n * D) % P;
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

/** A point in extended coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z. */
type Point = readonly [bigint, bigint, bigint, bigint];

function add(p: Point, q: Point): Point {
  const a = mod((p[1] - p[0]) * (q[1] - q[0]));
  const b = mod((p[1] + p[0]) * (q[1] + q[0]));
  const c = mod(p[3] * D2 * q[3]);
  const d = mod(2n * p[2] * q[2]);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

/** 2p (dbl-2008-hwcd with a = −1: 4 squarings and 4 multiplications, against add's 9 products). */
function double(p: Point): Point {
  const a = mod(p[0] * p[0]);
  const b = mod(p[1] * p[1]);
  const c = mod(2n * p[2] * p[2]);
  const d = P - a; // a·A with a = −1
  const xy = p[0] + p[1];
  const e = mod(xy * xy - a - b);
  const g = d + b;
  const f = g - c;
  const h = d - b;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function times(p: Point, n: bigint): Point {
  let r: Point = [0n, 1n, 1n, 0n];
  let q = p;
  for (; n > 0n; n >>= 1n) {
    if (n & 1n) r = add(r, q);
    if (n > 1n) q = double(q);
  }
  return r;
}

/** Keys found usable, so a key enrolling again (another program, a re-enrolment) is not checked twice. */
const usable = new Set<string>();
const USABLE_CAP = 200_000;

const isIdentity = (p: Point): boolean => p[0] === 0n && p[1] === p[2];

/** Why `key` is not a usable Ed25519 public key, or null when it is. */
export function ed25519KeyProblem(key: Uint8Array): string | null {
  if (!(key instanceof Uint8Array) || key.length !== 32) return 'it must be 32 bytes';
  const id = Buffer.from(key.buffer, key.byteOffset, 32).toString('hex');
  if (usable.has(id)) return null;
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? key[i] & 0x7f : key[i]);
  const sign = key[31] >> 7;
  if (y >= P) return 'its encoding is not canonical (y ≥ 2^255 − 19)';
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  const vx2 = mod(v * x * x);
  if (vx2 === mod(-u)) x = mod(x * SQRT_M1);
  else if (vx2 !== u) return 'it is not a point on the curve';
  if (x === 0n && sign === 1) return 'its encoding is not canonical (x = 0 with the sign bit set)';
  if (Number(x & 1n) !== sign) x = P - x;
  const point: Point = [x, y, 1n, mod(x * y)];
  if (isIdentity(times(point, 8n))) return 'it has small order (such as all zeros), so signatures for it can be forged';
  if (!isIdentity(times(point, L))) return 'it lies outside the prime-order subgroup';
  if (usable.size >= USABLE_CAP) usable.clear();
  usable.add(id);
  return null;
}

/** Why `key` is not a usable X25519 public key, or null when it is. */
export function x25519KeyProblem(key: Uint8Array): string | null {
  if (!(key instanceof Uint8Array) || key.length !== 32) return 'it must be 32 bytes';
  // a clamped scalar is a multiple of 8: a small-order point (all zeros among them) maps to zero
  // (X25519 in OpenSSL: the bytes of nacl.scalarMult, ~50× faster)
  const probe = x25519(PROBE_SCALAR, key);
  return probe.every((b) => b === 0) ? 'it has small order (such as all zeros), so a shared key with it would be all zeros' : null;
}
