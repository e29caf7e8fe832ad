import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import nacl from 'tweetnacl';
import { ed25519KeyProblem, ed25519Sign, ed25519Verify, enrolmentMessage, RequestVerifier, signedMessage, signEnrolment, signKeyPair, signRequest, x25519KeyProblem } from '../../privacy/index.js';

describe('privacy/sign', () => {
  const keys = signKeyPair();
  const body = new TextEncoder().encode('{"round":3}');
  const checkIn = { method: '/fedtune.v1.Coordinator/CheckIn', programId: 'oz' };

  it('signatures verify with node:crypto Ed25519 (independent implementation)', () => {
    const s = signRequest(checkIn, 'dev-1', body, keys, 1_700_000_000_000);
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(keys.publicKey).toString('base64url') }, format: 'jwk' });
    assert.ok(verify(null, signedMessage(checkIn, 'dev-1', s.nonce, s.timestamp, body), pub, s.signature));
    assert.match(new TextDecoder().decode(signedMessage(checkIn, 'dev-1', s.nonce, s.timestamp, body)), /^fedtune\.v1\|\/fedtune\.v1\.Coordinator\/CheckIn\|oz\|dev-1\|[0-9a-f]{32}\|1700000000000\|[0-9a-f]{64}$/);
  });

  it('accepts a fresh request once, then reports the replay', () => {
    const v = new RequestVerifier();
    const now = Date.now();
    const s = signRequest(checkIn, 'dev-1', body, keys, now);
    assert.equal(v.verify(s, checkIn, body, keys.publicKey, now + 10), 'ok');
    assert.equal(v.verify(s, checkIn, body, keys.publicKey, now + 20), 'replayed');
  });

  it('a signature binds its method and program', () => {
    const v = new RequestVerifier();
    const s = signRequest(checkIn, 'dev-1', body, keys);
    assert.equal(v.verify(s, { ...checkIn, method: '/fedtune.v1.Coordinator/WatchRounds' }, body, keys.publicKey), 'bad-signature');
    assert.equal(v.verify(s, { ...checkIn, programId: 'other' }, body, keys.publicKey), 'bad-signature');
    assert.equal(v.verify(s, checkIn, body, keys.publicKey), 'ok');
  });

  it('reports stale timestamps, changed bodies, other keys and forged signatures; forgeries do not burn the nonce', () => {
    const v = new RequestVerifier(60_000);
    const now = Date.now();
    const s = signRequest(checkIn, 'dev-1', body, keys, now);
    assert.equal(v.verify(s, checkIn, body, keys.publicKey, now + 61_000), 'stale');
    assert.equal(v.verify(s, checkIn, new TextEncoder().encode('{"round":4}'), keys.publicKey, now), 'bad-signature');
    assert.equal(v.verify(s, checkIn, body, signKeyPair().publicKey, now), 'bad-signature');
    assert.equal(v.verify({ ...s, deviceId: 'dev-2' }, checkIn, body, keys.publicKey, now), 'bad-signature');
    const forged = Uint8Array.from(s.signature);
    forged[3] ^= 0x10;
    assert.equal(v.verify({ ...s, signature: forged }, checkIn, body, keys.publicKey, now), 'bad-signature');
    assert.equal(v.verify(s, checkIn, body, keys.publicKey, now), 'ok');
    assert.equal(v.verify({ ...s, signature: new Uint8Array(10) }, checkIn, body, keys.publicKey, now), 'malformed');
  });

  it('an enrolment proof binds program and both keys, and is used once', () => {
    const v = new RequestVerifier();
    const box = nacl.box.keyPair().publicKey;
    const p = signEnrolment('oz', keys, box);
    assert.equal(v.verifyEnrolment(p, 'other', keys.publicKey, box), 'bad-signature');
    assert.equal(v.verifyEnrolment(p, 'oz', keys.publicKey, nacl.box.keyPair().publicKey), 'bad-signature');
    assert.equal(v.verifyEnrolment(p, 'oz', keys.publicKey, box), 'ok');
    assert.equal(v.verifyEnrolment(p, 'oz', keys.publicKey, box), 'replayed');
    const text = new TextDecoder().decode(enrolmentMessage('oz', keys.publicKey, box, p.nonce, p.timestamp));
    assert.equal(text, `fedtune.v1|/fedtune.v1.Coordinator/Enroll|oz|${Buffer.from(keys.publicKey).toString('hex')}|${Buffer.from(box).toString('hex')}|${p.nonce}|${p.timestamp}`);
  });

  it('finds small-order, off-curve and non-canonical Ed25519 keys, and small-order X25519 keys', () => {
    for (let i = 0; i < 20; i++) assert.equal(ed25519KeyProblem(signKeyPair().publicKey), null);
    assert.match(ed25519KeyProblem(new Uint8Array(32)) ?? '', /small order/);
    const one = new Uint8Array(32);
    one[0] = 1;
    assert.match(ed25519KeyProblem(one) ?? '', /small order/, 'the identity point');
    // an order-8 point (libsodium's blacklist) and p − 1 (order 2)
    assert.match(ed25519KeyProblem(Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex')) ?? '', /small order/);
    assert.match(ed25519KeyProblem(Buffer.from(`ec${'ff'.repeat(30)}7f`, 'hex')) ?? '', /small order/);
    assert.match(ed25519KeyProblem(Buffer.from(`ee${'ff'.repeat(30)}7f`, 'hex')) ?? '', /not canonical/, 'p + 1');
    const off = Uint8Array.from(signKeyPair().publicKey);
    let found = false;
    for (let b = 0; b < 256 && !found; b++) {
      off[0] = b;
      found = /not a point/.test(ed25519KeyProblem(off) ?? '');
    }
    assert.ok(found, 'some y has no x on the curve');
    assert.match(ed25519KeyProblem(new Uint8Array(5)) ?? '', /32 bytes/);
    assert.equal(x25519KeyProblem(nacl.box.keyPair().publicKey), null);
    assert.match(x25519KeyProblem(new Uint8Array(32)) ?? '', /small order/);
    assert.match(x25519KeyProblem(one) ?? '', /small order/);
  });

  it('throws on misuse', () => {
    assert.throws(() => signRequest(checkIn, '', body, keys), /deviceId/);
    assert.throws(() => signRequest(checkIn, 'a|b', body, keys), /deviceId/);
    assert.throws(() => signRequest({ method: 'CheckIn', programId: 'oz' }, 'd', body, keys), /full method/);
    assert.throws(() => signRequest(checkIn, 'd', body, keys, Date.now(), 'xyz'), /nonce/);
    assert.throws(() => signKeyPair(new Uint8Array(3)), /seed/);
  });
});

describe('privacy/sign: signing through OpenSSL', () => {
  it('ed25519Sign gives exactly tweetnacl’s signature (RFC 8032 signing is deterministic)', () => {
    for (let i = 0; i < 20; i++) {
      const k = nacl.sign.keyPair();
      const msg = nacl.randomBytes(i * 13);
      assert.deepEqual(ed25519Sign(msg, k.secretKey), nacl.sign.detached(msg, k.secretKey));
    }
    assert.throws(() => ed25519Sign(new Uint8Array(1), new Uint8Array(32)), /ed25519Sign: secretKey must be 64 bytes/);
  });

  it('ed25519Verify agrees with tweetnacl on good, tampered and foreign signatures, and is false (never a throw) for bad keys', () => {
    for (let i = 0; i < 20; i++) {
      const k = nacl.sign.keyPair();
      const msg = nacl.randomBytes(1 + i * 13);
      const sig = nacl.sign.detached(msg, k.secretKey);
      const bad = sig.slice();
      bad[i % 64] ^= 1;
      const other = nacl.sign.keyPair().publicKey;
      for (const [s, pk] of [[sig, k.publicKey], [bad, k.publicKey], [sig, other]] as const) assert.equal(ed25519Verify(msg, s, pk), nacl.sign.detached.verify(msg, s, pk));
    }
    const msg = new Uint8Array(3);
    assert.equal(ed25519Verify(msg, new Uint8Array(64), new Uint8Array(31)), false);
    assert.equal(ed25519Verify(msg, new Uint8Array(10), nacl.sign.keyPair().publicKey), false);
  });
});
