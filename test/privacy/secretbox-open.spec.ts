/**
 * privacy/secretbox-open: in-place XSalsa20-Poly1305 opening, checked against tweetnacl's
 * secretbox (the reference NaCl port) on random keys, nonces and lengths around every block and
 * word boundary; forgeries are refused and leave the bytes untouched.
 */
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { boxKeyPair, boxSharedKey, seal, BOX_NONCE_BYTES, BOX_OVERHEAD_BYTES } from '../../privacy/box.js';
import { openSealedInPlace } from '../../privacy/secretbox-open.js';

/** nonce ‖ secretbox(message) under `key`, in a fresh (aligned) array. */
function sealWith(key: Uint8Array, message: Uint8Array, nonce = nacl.randomBytes(24)): Uint8Array {
  const box = nacl.secretbox(message, nonce, key);
  const out = new Uint8Array(24 + box.length);
  out.set(nonce);
  out.set(box, 24);
  return out;
}

describe('privacy/secretbox-open', () => {
  it('opens what tweetnacl seals, for every length 0…300 and some long ones, as a view of the same bytes', () => {
    const lengths = [...Array.from({ length: 301 }, (_, i) => i), 4095, 4096, 4097, 46_240, 65_536 + 13];
    for (const len of lengths) {
      const key = nacl.randomBytes(32);
      const message = nacl.randomBytes(len);
      const sealed = sealWith(key, message);
      const reference = nacl.secretbox.open(sealed.subarray(24), sealed.subarray(0, 24), key);
      const plain = openSealedInPlace(sealed, key);
      assert.ok(plain, `length ${len}`);
      assert.deepEqual(plain, reference, `length ${len}`);
      assert.deepEqual(plain, message, `length ${len}`);
      assert.equal(plain.buffer, sealed.buffer);
      assert.equal(plain.byteOffset, sealed.byteOffset + BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES);
    }
  });

  it('opens box() messages with the precomputed shared key, as nacl.box.open does', () => {
    const program = boxKeyPair();
    const device = boxKeyPair();
    const message = nacl.randomBytes(1000);
    const sealed = seal(message, program.publicKey, device);
    assert.deepEqual(openSealedInPlace(Uint8Array.from(sealed), boxSharedKey(device.publicKey, program)), message);
  });

  it('refuses any flipped bit in nonce, tag or ciphertext, a wrong key and a short message, and leaves the bytes as they were', () => {
    const key = nacl.randomBytes(32);
    const sealed = sealWith(key, nacl.randomBytes(200));
    for (let i = 0; i < sealed.length; i += 7) {
      for (const bit of [0, 7]) {
        const t = Uint8Array.from(sealed);
        t[i] ^= 1 << bit;
        const before = Uint8Array.from(t);
        assert.equal(openSealedInPlace(t, key), null, `byte ${i} bit ${bit}`);
        assert.deepEqual(t, before);
      }
    }
    assert.equal(openSealedInPlace(Uint8Array.from(sealed), nacl.randomBytes(32)), null);
    assert.equal(openSealedInPlace(sealed.slice(0, 39), key), null);
    // an empty message still carries its tag
    assert.deepEqual(openSealedInPlace(sealWith(key, new Uint8Array(0)), key), new Uint8Array(0));
  });

  it('throws on misuse: a key that is not 32 bytes, a sealed array at an unaligned offset', () => {
    const key = nacl.randomBytes(32);
    const sealed = sealWith(key, nacl.randomBytes(64));
    assert.throws(() => openSealedInPlace(sealed, new Uint8Array(31)), TypeError);
    assert.throws(() => openSealedInPlace([] as unknown as Uint8Array, key), TypeError);
    const shifted = new Uint8Array(sealed.length + 1);
    shifted.set(sealed, 1);
    assert.throws(() => openSealedInPlace(shifted.subarray(1), key), /openSealedInPlace: sealed must start at a 4-byte-aligned offset/);
  });
});

describe('privacy/box boxSharedKey (node:crypto X25519)', () => {
  it('equals tweetnacl box.before for random keys, non-canonical keys and small-order keys', () => {
    const program = boxKeyPair();
    const keys = [...Array.from({ length: 40 }, () => boxKeyPair().publicKey), nacl.randomBytes(32), new Uint8Array(32).fill(0xff), new Uint8Array(32), Uint8Array.from([1, ...new Array<number>(31).fill(0)])];
    for (const pk of keys) assert.deepEqual(boxSharedKey(pk, program), nacl.box.before(pk, program.secretKey));
  });
});

describe('privacy/poly1305-wasm', () => {
  it('verifies the RFC 8439 §2.5.2 test vector and refuses it with any bit of the tag flipped', async () => {
    const { poly1305Verify } = await import('../../privacy/poly1305-wasm.js');
    const key = Buffer.from('85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b', 'hex');
    const msg = new TextEncoder().encode('Cryptographic Forum Research Group');
    const tag = Buffer.from('a8061dc1305136c6c22b8baf0c0127a9', 'hex');
    assert.equal(poly1305Verify(tag, 0, msg, 0, msg.length, key), true);
    for (let bit = 0; bit < 128; bit += 5) {
      const t = Uint8Array.from(tag);
      t[bit >> 3] ^= 1 << (bit & 7);
      assert.equal(poly1305Verify(t, 0, msg, 0, msg.length, key), false, `bit ${bit}`);
    }
  });

  it('agrees with tweetnacl crypto_onetimeauth on random keys and lengths, and on keys that force the final reduction (r = 1, all-ones blocks)', async () => {
    const { poly1305Verify } = await import('../../privacy/poly1305-wasm.js');
    const low = (nacl as unknown as { lowlevel: { crypto_onetimeauth(o: Uint8Array, op: number, m: Uint8Array, mp: number, n: number, k: Uint8Array): number } }).lowlevel;
    for (let t = 0; t < 600; t++) {
      const len = t % 150 + (t % 9 === 0 ? 4096 : 0);
      const m = nacl.randomBytes(len + 3);
      let k = nacl.randomBytes(32);
      if (t % 4 === 1) {
        // r = 1: h is the plain sum of the blocks with their high bits; two all-ones blocks take it past p = 2¹³⁰ − 5
        k = new Uint8Array(32);
        k[0] = 1;
        k.set(nacl.randomBytes(16), 16);
        m.fill(0xff);
      } else if (t % 4 === 2) k = new Uint8Array(32).fill(0xff);
      const tag = new Uint8Array(16);
      low.crypto_onetimeauth(tag, 0, m, 3, len, k);
      assert.equal(poly1305Verify(tag, 0, m, 3, len, k), true, `case ${t}, length ${len}`);
      tag[t % 16] ^= 1 << (t % 8);
      assert.equal(poly1305Verify(tag, 0, m, 3, len, k), false, `case ${t}: a flipped tag bit`);
    }
  });
});
