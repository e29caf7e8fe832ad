import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { RequestVerifier, signedMessage, signKeyPair, signRequest } from '../../privacy/index.js';

describe('privacy/sign', () => {
  const keys = signKeyPair();
  const body = new TextEncoder().encode('{"round":3}');

  it('signatures verify with node:crypto Ed25519 (independent implementation)', () => {
    const s = signRequest('dev-1', body, keys, 1_700_000_000_000);
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(keys.publicKey).toString('base64url') }, format: 'jwk' });
    assert.ok(verify(null, signedMessage('dev-1', s.nonce, s.timestamp, body), pub, s.signature));
  });

  it('accepts a fresh request once, then reports the replay', () => {
    const v = new RequestVerifier();
    const now = Date.now();
    const s = signRequest('dev-1', body, keys, now);
    assert.equal(v.verify(s, body, keys.publicKey, now + 10), 'ok');
    assert.equal(v.verify(s, body, keys.publicKey, now + 20), 'replayed');
  });

  it('reports stale timestamps, changed bodies, other keys and forged signatures; forgeries do not burn the nonce', () => {
    const v = new RequestVerifier(60_000);
    const now = Date.now();
    const s = signRequest('dev-1', body, keys, now);
    assert.equal(v.verify(s, body, keys.publicKey, now + 61_000), 'stale');
    assert.equal(v.verify(s, new TextEncoder().encode('{"round":4}'), keys.publicKey, now), 'bad-signature');
    assert.equal(v.verify(s, body, signKeyPair().publicKey, now), 'bad-signature');
    assert.equal(v.verify({ ...s, deviceId: 'dev-2' }, body, keys.publicKey, now), 'bad-signature');
    const forged = Uint8Array.from(s.signature);
    forged[3] ^= 0x10;
    assert.equal(v.verify({ ...s, signature: forged }, body, keys.publicKey, now), 'bad-signature');
    assert.equal(v.verify(s, body, keys.publicKey, now), 'ok');
    assert.equal(v.verify({ ...s, signature: new Uint8Array(10) }, body, keys.publicKey, now), 'malformed');
  });

  it('throws on misuse', () => {
    assert.throws(() => signRequest('', body, keys), /deviceId/);
    assert.throws(() => signRequest('a|b', body, keys), /deviceId/);
    assert.throws(() => signRequest('d', body, keys, Date.now(), 'xyz'), /nonce/);
    assert.throws(() => signKeyPair(new Uint8Array(3)), /seed/);
  });
});
