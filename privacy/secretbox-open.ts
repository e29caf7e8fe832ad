/**
 * Opening a sealed message (nonce ‖ Poly1305 tag ‖ XSalsa20 ciphertext, the layout of
 * privacy/box.ts) in place: the ciphertext is authenticated, then overwritten with the plaintext,
 * and the plaintext is returned as a view into the same bytes — no copies, so a coordinator that
 * opens thousands of updates a round allocates nothing per update here.
 *
 * The construction is NaCl's crypto_secretbox (XSalsa20-Poly1305) with a precomputed X25519 shared
 * key (crypto_box_beforenm): subkey = HSalsa20(key, nonce[0..16]); Salsa20 keystream under the
 * subkey with nonce[16..24] and a 64-bit block counter from 0; its first 32 bytes are the
 * one-time Poly1305 key, the rest encrypts. HSalsa20 is tweetnacl's (lowlevel); Poly1305 runs in
 * WebAssembly (privacy/poly1305-wasm.ts); the Salsa20 keystream is XORed 32 bits at a time
 * (tweetnacl packs and XORs byte by byte). The tag is checked before any byte is decrypted.
 */
import nacl from 'tweetnacl';
import { poly1305Verify } from './poly1305-wasm.js';

const NONCE = 24;
const TAG = 16;
/** "expand 32-byte k", as four little-endian words and as bytes (for HSalsa20). */
const SIGMA = new Uint8Array([101, 120, 112, 97, 110, 100, 32, 51, 50, 45, 98, 121, 116, 101, 32, 107]);
const S0 = 0x61707865;
const S1 = 0x3320646e;
const S2 = 0x79622d32;
const S3 = 0x6b206574;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

interface Lowlevel {
  crypto_core_hsalsa20(out: Uint8Array, inp: Uint8Array, k: Uint8Array, c: Uint8Array): number;
}
const low = (nacl as unknown as { lowlevel: Lowlevel }).lowlevel;

const le32 = (b: Uint8Array, i: number): number => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;

/**
 * The Salsa20 block for state `j` (16 words), XORed into `w[p..p+16)`; with `w` undefined, written
 * to `out` instead (keystream). Words are stored mod 2³² by the Uint32Array. 20 rounds: the
 * spec's column and row quarter-rounds, unrolled.
 */
function salsa20Block(j: Uint32Array, w: Uint32Array | undefined, p: number, out?: Uint32Array): void {
  let x0 = j[0], x1 = j[1], x2 = j[2], x3 = j[3], x4 = j[4], x5 = j[5], x6 = j[6], x7 = j[7];
  let x8 = j[8], x9 = j[9], x10 = j[10], x11 = j[11], x12 = j[12], x13 = j[13], x14 = j[14], x15 = j[15];
  let u: number;
  for (let i = 0; i < 20; i += 2) {
    // columns: (x0, x4, x8, x12), (x5, x9, x13, x1), (x10, x14, x2, x6), (x15, x3, x7, x11)
    u = (x0 + x12) | 0; x4 ^= (u << 7) | (u >>> 25);
    u = (x4 + x0) | 0; x8 ^= (u << 9) | (u >>> 23);
    u = (x8 + x4) | 0; x12 ^= (u << 13) | (u >>> 19);
    u = (x12 + x8) | 0; x0 ^= (u << 18) | (u >>> 14);
    u = (x5 + x1) | 0; x9 ^= (u << 7) | (u >>> 25);
    u = (x9 + x5) | 0; x13 ^= (u << 9) | (u >>> 23);
    u = (x13 + x9) | 0; x1 ^= (u << 13) | (u >>> 19);
    u = (x1 + x13) | 0; x5 ^= (u << 18) | (u >>> 14);
    u = (x10 + x6) | 0; x14 ^= (u << 7) | (u >>> 25);
    u = (x14 + x10) | 0; x2 ^= (u << 9) | (u >>> 23);
    u = (x2 + x14) | 0; x6 ^= (u << 13) | (u >>> 19);
    u = (x6 + x2) | 0; x10 ^= (u << 18) | (u >>> 14);
    u = (x15 + x11) | 0; x3 ^= (u << 7) | (u >>> 25);
    u = (x3 + x15) | 0; x7 ^= (u << 9) | (u >>> 23);
    u = (x7 + x3) | 0; x11 ^= (u << 13) | (u >>> 19);
    u = (x11 + x7) | 0; x15 ^= (u << 18) | (u >>> 14);
    // rows: (x0, x1, x2, x3), (x5, x6, x7, x4), (x10, x11, x8, x9), (x15, x12, x13, x14)
    u = (x0 + x3) | 0; x1 ^= (u << 7) | (u >>> 25);
    u = (x1 + x0) | 0; x2 ^= (u << 9) | (u >>> 23);
    u = (x2 + x1) | 0; x3 ^= (u << 13) | (u >>> 19);
    u = (x3 + x2) | 0; x0 ^= (u << 18) | (u >>> 14);
    u = (x5 + x4) | 0; x6 ^= (u << 7) | (u >>> 25);
    u = (x6 + x5) | 0; x7 ^= (u << 9) | (u >>> 23);
    u = (x7 + x6) | 0; x4 ^= (u << 13) | (u >>> 19);
    u = (x4 + x7) | 0; x5 ^= (u << 18) | (u >>> 14);
    u = (x10 + x9) | 0; x11 ^= (u << 7) | (u >>> 25);
    u = (x11 + x10) | 0; x8 ^= (u << 9) | (u >>> 23);
    u = (x8 + x11) | 0; x9 ^= (u << 13) | (u >>> 19);
    u = (x9 + x8) | 0; x10 ^= (u << 18) | (u >>> 14);
    u = (x15 + x14) | 0; x12 ^= (u << 7) | (u >>> 25);
    u = (x12 + x15) | 0; x13 ^= (u << 9) | (u >>> 23);
    u = (x13 + x12) | 0; x14 ^= (u << 13) | (u >>> 19);
    u = (x14 + x13) | 0; x15 ^= (u << 18) | (u >>> 14);
  }
  if (w) {
    w[p + 0] ^= x0 + j[0];
    w[p + 1] ^= x1 + j[1];
    w[p + 2] ^= x2 + j[2];
    w[p + 3] ^= x3 + j[3];
    w[p + 4] ^= x4 + j[4];
    w[p + 5] ^= x5 + j[5];
    w[p + 6] ^= x6 + j[6];
    w[p + 7] ^= x7 + j[7];
    w[p + 8] ^= x8 + j[8];
    w[p + 9] ^= x9 + j[9];
    w[p + 10] ^= x10 + j[10];
    w[p + 11] ^= x11 + j[11];
    w[p + 12] ^= x12 + j[12];
    w[p + 13] ^= x13 + j[13];
    w[p + 14] ^= x14 + j[14];
    w[p + 15] ^= x15 + j[15];
    return;
  }
  const o = out as Uint32Array;
  o[0] = x0 + j[0];
  o[1] = x1 + j[1];
  o[2] = x2 + j[2];
  o[3] = x3 + j[3];
  o[4] = x4 + j[4];
  o[5] = x5 + j[5];
  o[6] = x6 + j[6];
  o[7] = x7 + j[7];
  o[8] = x8 + j[8];
  o[9] = x9 + j[9];
  o[10] = x10 + j[10];
  o[11] = x11 + j[11];
  o[12] = x12 + j[12];
  o[13] = x13 + j[13];
  o[14] = x14 + j[14];
  o[15] = x15 + j[15];
}

/** Scratch reused across calls (the event loop runs one open at a time). */
const state = new Uint32Array(16);
const block = new Uint32Array(16);
const blockBytes = new Uint8Array(block.buffer);
const subkey = new Uint8Array(32);
const polyKey = new Uint8Array(32);

/**
 * Authenticate and decrypt `sealed` (nonce ‖ tag ‖ ciphertext) with a precomputed shared key, in
 * place. Returns the plaintext — a view of `sealed`'s own bytes from offset 40, which now hold
 * it — or null if the message is not authentic (then `sealed` is left as it was). `sealed` must
 * start at a 4-byte-aligned offset of its buffer (a fresh Uint8Array does); on a big-endian host
 * this falls back to tweetnacl (one copy).
 */
export function openSealedInPlace(sealed: Uint8Array, sharedKey: Uint8Array): Uint8Array | null {
  if (!(sealed instanceof Uint8Array)) throw new TypeError('openSealedInPlace: sealed must be a Uint8Array');
  if (!(sharedKey instanceof Uint8Array) || sharedKey.length !== 32) throw new TypeError('openSealedInPlace: sharedKey must be a Uint8Array of 32 bytes');
  if (sealed.byteOffset % 4 !== 0) throw new RangeError(`openSealedInPlace: sealed must start at a 4-byte-aligned offset of its buffer, got ${sealed.byteOffset}`);
  if (sealed.length < NONCE + TAG) return null;
  const start = NONCE + TAG;
  const n = sealed.length - start;
  if (!LITTLE_ENDIAN) {
    const plain = nacl.box.open.after(sealed.subarray(NONCE), sealed.subarray(0, NONCE), sharedKey);
    if (!plain) return null;
    sealed.set(plain, start);
    return sealed.subarray(start);
  }
  low.crypto_core_hsalsa20(subkey, sealed.subarray(0, 16), sharedKey, SIGMA);
  state[0] = S0;
  state[5] = S1;
  state[10] = S2;
  state[15] = S3;
  for (let i = 0; i < 4; i++) {
    state[1 + i] = le32(subkey, 4 * i);
    state[11 + i] = le32(subkey, 16 + 4 * i);
  }
  state[6] = le32(sealed, 16);
  state[7] = le32(sealed, 20);
  state[8] = 0;
  state[9] = 0;
  // block 0: the Poly1305 key, then the first 32 bytes of keystream
  salsa20Block(state, undefined, 0, block);
  polyKey.set(blockBytes.subarray(0, 32));
  const ok = poly1305Verify(sealed, NONCE, sealed, start, n, polyKey);
  polyKey.fill(0);
  if (!ok) {
    block.fill(0);
    subkey.fill(0);
    state.fill(0);
    return null;
  }
  const head = Math.min(32, n);
  for (let i = 0; i < head; i++) sealed[start + i] ^= blockBytes[32 + i];
  // whole 64-byte blocks, a word at a time (start + 32 = 72 is 4-aligned), then the tail
  const whole = n > 32 ? Math.floor((n - 32) / 64) : 0;
  const words = whole > 0 ? new Uint32Array(sealed.buffer, sealed.byteOffset + start + 32, whole * 16) : block;
  for (let b = 0; b < whole; b++) {
    state[8] = (state[8] + 1) >>> 0;
    if (state[8] === 0) state[9] = (state[9] + 1) >>> 0;
    salsa20Block(state, words, 16 * b);
  }
  const tail = start + 32 + 64 * whole;
  if (tail < sealed.length) {
    state[8] = (state[8] + 1) >>> 0;
    if (state[8] === 0) state[9] = (state[9] + 1) >>> 0;
    salsa20Block(state, undefined, 0, block);
    for (let i = tail; i < sealed.length; i++) sealed[i] ^= blockBytes[i - tail];
  }
  block.fill(0);
  subkey.fill(0);
  state.fill(0);
  return sealed.subarray(start);
}
