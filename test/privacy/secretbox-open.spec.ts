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
