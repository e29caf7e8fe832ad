import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { boxKeyPair, boxSharedKey, open, openWithSharedKey, seal, BOX_NONCE_BYTES, BOX_OVERHEAD_BYTES } from '../../privacy/index.js';

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');

describe('privacy/box', () => {
  const program = boxKeyPair();
  const device = boxKeyPair();
  const message = new TextEncoder().encode('a LoRA delta, in chunks');

  it('round-trips, and the ciphertext hides the message', () => {
    const sealed = seal(message, program.publicKey, device);
    assert.equal(sealed.length, BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES + message.length);
    assert.ok(!Buffer.from(sealed).includes(Buffer.from('LoRA')));
    assert.deepEqual(open(sealed, device.publicKey, program), message);
  });

  it('opens to null when any byte is changed, or for the wrong sender or recipient', () => {
    const sealed = seal(message, program.publicKey, device);
    for (const i of [0, 10, BOX_NONCE_BYTES, BOX_NONCE_BYTES + 5, sealed.length - 1]) {
      const t = Uint8Array.from(sealed);
      t[i] ^= 1;
      assert.equal(open(t, device.publicKey, program), null);
    }
    assert.equal(open(sealed, boxKeyPair().publicKey, program), null);
    assert.equal(open(sealed, device.publicKey, boxKeyPair()), null);
    assert.equal(open(sealed.subarray(0, 20), device.publicKey, program), null);
  });

  it('opening with a precomputed shared key equals open(), and fails alike on tampering', () => {
    const sealed = seal(message, program.publicKey, device);
    const shared = boxSharedKey(device.publicKey, program);
    assert.deepEqual(openWithSharedKey(sealed, shared), open(sealed, device.publicKey, program));
    const t = Uint8Array.from(sealed);
    t[BOX_NONCE_BYTES + 3] ^= 1;
    assert.equal(openWithSharedKey(t, shared), null);
    assert.equal(openWithSharedKey(sealed, boxSharedKey(boxKeyPair().publicKey, program)), null);
    assert.throws(() => openWithSharedKey(sealed, new Uint8Array(5)), TypeError);
  });

  it('derives X25519 public keys exactly as node:crypto does (independent implementation)', () => {
    const kp = boxKeyPair(new Uint8Array(32).fill(7));
    const nodePriv = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(kp.secretKey), x: b64u(kp.publicKey) }, format: 'jwk' });
    const jwk = createPublicKey(nodePriv).export({ format: 'jwk' }) as { x: string };
    assert.equal(jwk.x, b64u(kp.publicKey));
    assert.deepEqual(boxKeyPair(new Uint8Array(32).fill(7)), kp);
  });

  it('throws TypeError on misuse (wrong key or nonce sizes)', () => {
    assert.throws(() => seal(message, new Uint8Array(31), device), /seal: recipientPublicKey must be a Uint8Array of 32 bytes/);
    assert.throws(() => seal(message, program.publicKey, device, new Uint8Array(5)), /nonce/);
    assert.throws(() => open(message, device.publicKey, { publicKey: program.publicKey, secretKey: new Uint8Array(3) }), TypeError);
  });
});
