/**
 * Mask arithmetic for secure aggregation in Z_(2^32): fixed-point encoding of clipped updates
 * with headroom for n summands, mask expansion from a 32-byte seed with AES-256-CTR (OpenSSL
 * through node:crypto; Web Crypto, Python's `cryptography`, Go, Java have the same primitive),
 * and pairwise seeds from X25519 key agreement.
 *
 * X25519 runs in node:crypto (OpenSSL) when it can: the same function as tweetnacl's
 * `scalarMult` (RFC 7748, same clamping, same bytes out). Keys are imported as raw JWK values
 * (OpenSSL 3's DER decoders cost ~0.9 ms a private key, more than the scalar multiplication),
 * and one secret key is imported once for all its agreements ({@link x25519Agreement}).
 * tweetnacl stays the fallback for inputs OpenSSL refuses (e.g. a low-order point giving an
 * all-zero secret).
 */
import { createCipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, type Cipher, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

interface Lowlevel {
  crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
}
const lowlevel = (nacl as unknown as { lowlevel: Lowlevel }).lowlevel;
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const SIGMA = new TextEncoder().encode('expand 32-byte k');
const b64url = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

function x25519PrivateKey(secretKey: Uint8Array): KeyObject {
  try {
    // raw import (EVP_PKEY_new_raw_private_key); `x` is not read for a private key
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secretKey), x: '' }, format: 'jwk' });
  } catch {
    return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
  }
}

function x25519PublicKey(publicKey: Uint8Array): KeyObject {
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(publicKey) }, format: 'jwk' });
  } catch {
    return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
  }
}

/**
 * X25519 with one secret key against any number of public keys: the secret is imported into
 * OpenSSL once. Each call gives the bytes of tweetnacl's `nacl.scalarMult(secretKey, publicKey)`.
 */
export function x25519Agreement(secretKey: Uint8Array): (publicKey: Uint8Array) => Uint8Array {
  let priv: KeyObject | undefined;
  try {
    priv = x25519PrivateKey(secretKey);
  } catch {
    priv = undefined; // malformed: tweetnacl below throws its own error
  }
  return (publicKey) => {
    if (priv) {
      try {
        const out = diffieHellman({ privateKey: priv, publicKey: x25519PublicKey(publicKey) });
        return new Uint8Array(out.buffer, out.byteOffset, out.length);
      } catch {
        // e.g. a low-order point (all-zero secret): tweetnacl computes it
      }
    }
    return nacl.scalarMult(secretKey, publicKey);
  };
}

/** X25519(secretKey, publicKey): bytes-for-bytes tweetnacl's `nacl.scalarMult`, via OpenSSL. */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  return x25519Agreement(secretKey)(publicKey);
}

/** The X25519 base point (u = 9): x25519(secretKey, X25519_BASE_POINT) is the public key. */
export const X25519_BASE_POINT: Uint8Array = Uint8Array.of(9, ...new Array<number>(31).fill(0));

/** nacl.box's precomputed key (`nacl.box.before`) with the X25519 step in OpenSSL. */
export function boxKey(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array {
  const k = new Uint8Array(32);
  lowlevel.crypto_core_hsalsa20(k, new Uint8Array(16), x25519(mySecretKey, theirPublicKey), SIGMA);
  return k;
}

const MASK_IV = Buffer.alloc(16);

/**
 * The mask PRG for a 32-byte seed: AES-256-CTR with key `seed` and an all-zero initial counter
 * block (a 128-bit big-endian counter, +1 a 16-byte block); `update(zeros)` yields the keystream,
 * read as little-endian uint32 words. A fresh cipher per call.
 */
export function maskStream(seed: Uint8Array): Cipher {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('maskStream: seed must be 32 bytes');
  return createCipheriv('aes-256-ctr', seed, MASK_IV);
}

/**
 * `length` uniform 32-bit words expanded from a 32-byte seed: the AES-256-CTR keystream under
 * key `seed` from an all-zero initial counter block, read as little-endian uint32.
 */
export function expandMask(seed: Uint8Array, length: number): Uint32Array {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('expandMask: seed must be 32 bytes');
  if (!Number.isInteger(length) || length < 0) throw new RangeError(`expandMask: length must be a non-negative integer, got ${length}`);
  const out = new Uint32Array(length);
  const cipher = maskStream(seed);
  new Uint8Array(out.buffer).set(cipher.update(new Uint8Array(4 * length)));
  cipher.final();
  return out;
}

// two's-complement Int32 arithmetic is arithmetic mod 2^32 (little-endian words, as the mask reads them)
function addInt32(acc: Int32Array, at: number, m: Int32Array, n: number): void {
  for (let i = 0; i < n; i++) acc[at + i] = (acc[at + i] + m[i]) | 0;
}
function subInt32(acc: Int32Array, at: number, m: Int32Array, n: number): void {
  for (let i = 0; i < n; i++) acc[at + i] = (acc[at + i] - m[i]) | 0;
}

/**
 * Pairwise seeds for one secret key (imported once): (theirPublicKey, context) ↦
 * SHA-512(X25519(mySecretKey, theirPublicKey) ‖ UTF-8 context) truncated to 32 bytes.
 */
export function pairwiseSeeder(mySecretKey: Uint8Array): (theirPublicKey: Uint8Array, context: string) => Uint8Array {
  if (!(mySecretKey instanceof Uint8Array) || mySecretKey.length !== 32) throw new TypeError('pairwiseSeed: mySecretKey must be 32 bytes');
  const agree = x25519Agreement(mySecretKey);
  return (theirPublicKey, context) => {
    if (!(theirPublicKey instanceof Uint8Array) || theirPublicKey.length !== 32) throw new TypeError('pairwiseSeed: theirPublicKey must be 32 bytes');
    const h = createHash('sha512').update(agree(theirPublicKey)).update(context, 'utf8').digest();
    return new Uint8Array(h.buffer, h.byteOffset, 32);
  };
}

/** The seed two devices share: SHA-512(X25519(mySecret, theirPublic) ‖ context) truncated to 32 bytes. */
export function pairwiseSeed(mySecretKey: Uint8Array, theirPublicKey: Uint8Array, context: string): Uint8Array {
  return pairwiseSeeder(mySecretKey)(theirPublicKey, context);
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
  const out = new Uint32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (!Number.isFinite(v) || Math.abs(v * scale) >= 2 ** 31) throw new RangeError(`encodeFixed: value ${v} does not fit at scale ${scale}`);
    out[i] = Math.round(v * scale) >>> 0;
  }
  return out;
}

/** Decode a sum in Z_(2^32) back to floats (as signed 32-bit integers / scale). */
export function decodeFixed(sum: Uint32Array, scale: number): Float32Array {
  const out = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i] | 0) / scale;
  return out;
}

/** a ← a + sign·b mod 2^32, in place. */
export function addMod32(a: Uint32Array, b: Uint32Array, sign: 1 | -1 = 1): Uint32Array {
  if (a.length !== b.length) throw new RangeError(`addMod32: lengths ${a.length} and ${b.length} differ`);
  const acc = new Int32Array(a.buffer, a.byteOffset, a.length);
  const m = new Int32Array(b.buffer, b.byteOffset, b.length);
  if (sign === 1) addInt32(acc, 0, m, a.length);
  else subInt32(acc, 0, m, a.length);
  return a;
}
