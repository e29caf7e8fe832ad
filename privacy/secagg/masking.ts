/**
 * Mask arithmetic for secure aggregation in Z_(2^32): fixed-point encoding of clipped updates
 * with headroom for n summands, mask expansion from a 32-byte seed with XSalsa20 (tweetnacl's
 * stream), and pairwise seeds from X25519 key agreement.
 *
 * X25519 runs in node:crypto (OpenSSL) when it can: the same function as tweetnacl's
 * `scalarMult` (RFC 7748, same clamping, same bytes out) at ~1/20 of the time; tweetnacl stays
 * the fallback for inputs OpenSSL refuses (e.g. a low-order point giving an all-zero secret).
 */
import { createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import nacl from 'tweetnacl';

interface Lowlevel {
  crypto_stream(c: Uint8Array, cpos: number, d: number, n: Uint8Array, k: Uint8Array): number;
  crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
}
const lowlevel = (nacl as unknown as { lowlevel: Lowlevel }).lowlevel;
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const SIGMA = new TextEncoder().encode('expand 32-byte k');

/** X25519(secretKey, publicKey): bytes-for-bytes tweetnacl's `nacl.scalarMult`, via OpenSSL. */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  try {
    const out = diffieHellman({
      privateKey: createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' }),
      publicKey: createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }),
    });
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  } catch {
    return nacl.scalarMult(secretKey, publicKey);
  }
}

/** The X25519 base point (u = 9): x25519(secretKey, X25519_BASE_POINT) is the public key. */
export const X25519_BASE_POINT: Uint8Array = Uint8Array.of(9, ...new Array<number>(31).fill(0));

/** nacl.box's precomputed key (`nacl.box.before`) with the X25519 step in OpenSSL. */
export function boxKey(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  const k = new Uint8Array(32);
  lowlevel.crypto_core_hsalsa20(k, new Uint8Array(16), x25519(mySecretKey, theirPublicKey), SIGMA);
  return k;
}
const MASK_NONCE = new Uint8Array(24).fill(0).map((_, i) => 'fedtune.secagg.mask.v1!!'.charCodeAt(i));

/** `length` uniform 32-bit words expanded from a 32-byte seed (XSalsa20 keystream). */
export function expandMask(seed: Uint8Array, length: number): Uint32Array {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('expandMask: seed must be 32 bytes');
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`expandMask: length must be a non-negative integer, got ${length}`);
  const bytes = new Uint8Array(4 * length);
  lowlevel.crypto_stream(bytes, 0, bytes.length, MASK_NONCE, seed);
  return new Uint32Array(bytes.buffer);
}

/** The seed two devices share: SHA-512(X25519(mySecret, theirPublic) ‖ context) truncated to 32 bytes. */
export function pairwiseSeed(mySecretKey: Uint8Array, theirPublicKey: Uint8Array, context: string): Uint8Array {
  for (const [name, k] of [['mySecretKey', mySecretKey], ['theirPublicKey', theirPublicKey]] as const) {
    if (!(k instanceof Uint8Array) || k.length !== 32) throw new TypeError(`pairwiseSeed: ${name} must be 32 bytes`);
  }
  const shared = x25519(mySecretKey, theirPublicKey);
  const ctx = new TextEncoder().encode(context);
  const buf = new Uint8Array(shared.length + ctx.length);
  buf.set(shared);
  buf.set(ctx, shared.length);
  return nacl.hash(buf).subarray(0, 32);
}

/** Scale for fixed-point encoding so n values of magnitude ≤ bound sum without overflow. */
export function fixedPointScale(bound: number, summands: number): number {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError(`fixedPointScale: bound must be positive, got ${bound}`);
  if (!Number.isInteger(summands) || summands < 1) throw new RangeError(`fixedPointScale: summands must be a positive integer, got ${summands}`);
  const scale = Math.floor((2 ** 31 - 1) / (bound * summands));
  if (scale < 1) throw new RangeError(`fixedPointScale: ${summands} summands of magnitude ${bound} do not fit in 32 bits; clip harder or aggregate fewer`);
  return scale;
}

/** round(x · scale) mod 2^32 per value; |x| must be ≤ bound used for the scale. */
export function encodeFixed(x: Float32Array, scale: number): Uint32Array {
  return Uint32Array.from(x, (v) => {
    if (!Number.isFinite(v) || Math.abs(v * scale) >= 2 ** 31) throw new RangeError(`encodeFixed: value ${v} does not fit at scale ${scale}`);
    return Math.round(v * scale) >>> 0;
  });
}

/** Decode a sum in Z_(2^32) back to floats (as signed 32-bit integers / scale). */
export function decodeFixed(sum: Uint32Array, scale: number): Float32Array {
  return Float32Array.from(sum, (v) => (v | 0) / scale);
}

/** a ← a + sign·b mod 2^32, in place. */
export function addMod32(a: Uint32Array, b: Uint32Array, sign: 1 | -1 = 1): Uint32Array {
  if (a.length !== b.length) throw new RangeError(`addMod32: lengths ${a.length} and ${b.length} differ`);
  for (let i = 0; i < a.length; i++) a[i] = (a[i] + sign * b[i]) >>> 0;
  return a;
}
