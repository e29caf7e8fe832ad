/**
 * End-to-end encryption of an update to a program's X25519 key with tweetnacl's `box`
 * (X25519 + XSalsa20-Poly1305). A sealed message is nonce (24 bytes) ‖ ciphertext. Misuse
 * (wrong key sizes) throws; a forged, tampered or misaddressed message opens to null.
 */
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

/** An X25519 key pair. */
export interface BoxKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** Bytes prepended to every sealed message. */
export const BOX_NONCE_BYTES = nacl.box.nonceLength;
/** Bytes the authenticator adds. */
export const BOX_OVERHEAD_BYTES = nacl.box.overheadLength;

function checkKey(where: string, name: string, k: Uint8Array, len: number): void {
  if (!(k instanceof Uint8Array) || k.length !== len) throw new TypeError(`${where}: ${name} must be a Uint8Array of ${len} bytes`);
}

/** A fresh key pair (crypto randomness), or one derived from a 32-byte seed. */
export function boxKeyPair(seed?: Uint8Array): BoxKeyPair {
  if (seed === undefined) return nacl.box.keyPair();
  checkKey('boxKeyPair', 'seed', seed, 32);
  return nacl.box.keyPair.fromSecretKey(nacl.hash(seed).subarray(0, 32));
}

/** Encrypt `message` from `sender` to `recipientPublicKey`. `nonce` is random unless given (tests). */
export function seal(message: Uint8Array, recipientPublicKey: Uint8Array, sender: BoxKeyPair, nonce: Uint8Array = nacl.randomBytes(BOX_NONCE_BYTES)): Uint8Array {
  if (!(message instanceof Uint8Array)) throw new TypeError('seal: message must be a Uint8Array');
  checkKey('seal', 'recipientPublicKey', recipientPublicKey, nacl.box.publicKeyLength);
  checkKey('seal', 'sender.secretKey', sender.secretKey, nacl.box.secretKeyLength);
  checkKey('seal', 'nonce', nonce, BOX_NONCE_BYTES);
  // nacl.box = box.after with box.before's key; the X25519 step in OpenSSL (same bytes, ~50× faster)
  const ct = nacl.box.after(message, nonce, boxSharedKey(recipientPublicKey, sender));
  const out = new Uint8Array(BOX_NONCE_BYTES + ct.length);
  out.set(nonce);
  out.set(ct, BOX_NONCE_BYTES);
  return out;
}

/** Decrypt a sealed message from `senderPublicKey`; null if it is not authentic. */
export function open(sealed: Uint8Array, senderPublicKey: Uint8Array, recipient: BoxKeyPair): Uint8Array | null {
  if (!(sealed instanceof Uint8Array)) throw new TypeError('open: sealed must be a Uint8Array');
  checkKey('open', 'senderPublicKey', senderPublicKey, nacl.box.publicKeyLength);
  checkKey('open', 'recipient.secretKey', recipient.secretKey, nacl.box.secretKeyLength);
  if (sealed.length < BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES) return null;
  return nacl.box.open(sealed.subarray(BOX_NONCE_BYTES), sealed.subarray(0, BOX_NONCE_BYTES), senderPublicKey, recipient.secretKey);
}

/** DER prefix of an X25519 PKCS#8 private key; the raw 32 bytes follow. */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
/** Parsed recipient secret keys (a coordinator derives thousands of shared keys with its program key). */
const parsedSecrets = new WeakMap<Uint8Array, KeyObject>();

/**
 * The X25519 shared key between a sender and a recipient (what `open` derives on every call):
 * compute once per peer. It is nacl.box.before's — HSalsa20 of the X25519 secret — with the
 * X25519 step done by node:crypto (~30× faster than tweetnacl's pure JS, which is kept as the
 * fallback, e.g. for a small-order key, where OpenSSL refuses and tweetnacl gives zeros).
 */
export function boxSharedKey(senderPublicKey: Uint8Array, recipient: BoxKeyPair): Uint8Array {
  checkKey('boxSharedKey', 'senderPublicKey', senderPublicKey, nacl.box.publicKeyLength);
  checkKey('boxSharedKey', 'recipient.secretKey', recipient.secretKey, nacl.box.secretKeyLength);
  let dh: Uint8Array;
  try {
    let sk = parsedSecrets.get(recipient.secretKey);
    if (!sk) {
      sk = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, recipient.secretKey]), format: 'der', type: 'pkcs8' });
      parsedSecrets.set(recipient.secretKey, sk);
    }
    // a JWK imports ~5× faster than the same key as DER (OpenSSL 3's decoder lookup)
    const pk = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(senderPublicKey.buffer, senderPublicKey.byteOffset, senderPublicKey.byteLength).toString('base64url') }, format: 'jwk' });
    dh = new Uint8Array(diffieHellman({ privateKey: sk, publicKey: pk }));
  } catch {
    return nacl.box.before(senderPublicKey, recipient.secretKey);
  }
  const shared = new Uint8Array(32);
  (nacl as unknown as { lowlevel: { crypto_core_hsalsa20(o: Uint8Array, i: Uint8Array, k: Uint8Array, c: Uint8Array): number } }).lowlevel.crypto_core_hsalsa20(shared, new Uint8Array(16), dh, SIGMA);
  dh.fill(0);
  return shared;
}

/** "expand 32-byte k" (the Salsa20 constant). */
const SIGMA = new TextEncoder().encode('expand 32-byte k');

/** {@link open} with a precomputed {@link boxSharedKey}; null if the message is not authentic. */
export function openWithSharedKey(sealed: Uint8Array, sharedKey: Uint8Array): Uint8Array | null {
  if (!(sealed instanceof Uint8Array)) throw new TypeError('openWithSharedKey: sealed must be a Uint8Array');
  checkKey('openWithSharedKey', 'sharedKey', sharedKey, nacl.box.sharedKeyLength);
  if (sealed.length < BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES) return null;
  return nacl.box.open.after(sealed.subarray(BOX_NONCE_BYTES), sealed.subarray(0, BOX_NONCE_BYTES), sharedKey);
}
