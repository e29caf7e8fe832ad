import assert from 'node:assert/strict';
import { createCipheriv, webcrypto } from 'node:crypto';
import nacl from 'tweetnacl';
import { seededRng } from '../../../model/index.js';
import { combineShares, expandMask, MaskSum, maskSumUsesSimd, pairwiseSeed, pairwiseSeeder, recoverSecret, SHAMIR_PRIME, x25519, X25519_BASE_POINT, x25519Agreement } from '../../../privacy/index.js';

/** AES-256-CTR built by hand from single-block AES-256 (ECB) of big-endian counters 0, 1, 2, …: an independent construction. */
function referenceKeystream(key: Uint8Array, bytes: number): Uint8Array {
  const blocks = Math.ceil(bytes / 16);
  const counters = Buffer.alloc(16 * blocks);
  for (let i = 0; i < blocks; i++) counters.writeUInt32BE(i, 16 * i + 12);
  const ecb = createCipheriv('aes-256-ecb', key, null).setAutoPadding(false);
  return Buffer.concat([ecb.update(counters), ecb.final()]).subarray(0, bytes);
}

const words = (bytes: Uint8Array): Uint32Array => {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint32Array.from({ length: bytes.length / 4 }, (_, i) => v.getUint32(4 * i, true));
};

describe('privacy/secagg masks (AES-256-CTR PRG, X25519 seeds, SIMD sums)', () => {
  it('expandMask is the AES-256-CTR keystream from a zero counter, as little-endian words (ECB reference and Web Crypto)', async () => {
    const seed = nacl.randomBytes(32);
    const n = 16_411; // not a multiple of 4 words: a partial last block
    assert.deepEqual(expandMask(seed, n), words(referenceKeystream(seed, 4 * n)));
    // what a browser client would run: Web Crypto AES-CTR, 128-bit counter block all zero
    const key = await webcrypto.subtle.importKey('raw', seed, 'AES-CTR', false, ['encrypt']);
    const ks = new Uint8Array(await webcrypto.subtle.encrypt({ name: 'AES-CTR', counter: new Uint8Array(16), length: 128 }, key, new Uint8Array(4 * n)));
    assert.deepEqual(expandMask(seed, n), words(ks));
    assert.equal(expandMask(seed, 0).length, 0);
    assert.throws(() => expandMask(new Uint8Array(16), 4), /expandMask: seed must be 32 bytes/);
    assert.throws(() => expandMask(seed, -1), /expandMask: length/);
  });

  it('MaskSum adds words and masks mod 2^32 exactly like BigInt arithmetic, with and without SIMD, across chunk edges', () => {
    const rng = seededRng(3);
    for (const length of [1, 3, 4, 5, 16_384, 16_385, 40_003]) {
      const x = Uint32Array.from({ length }, () => rng.nextU32());
      const y = Uint32Array.from({ length }, () => rng.nextU32());
      const s1 = nacl.randomBytes(32);
      const s2 = nacl.randomBytes(32);
      const m1 = words(referenceKeystream(s1, 4 * length));
      const m2 = words(referenceKeystream(s2, 4 * length));
      const want = Uint32Array.from({ length }, (_, i) => Number((BigInt(x[i]) - BigInt(y[i]) + BigInt(m1[i]) - BigInt(m2[i]) + (1n << 34n)) % (1n << 32n)));
      for (const simd of [true, false]) {
        const sum = new MaskSum(length, { simd }).add(x).add(y, -1).addMask(s1, 1).addMask(s2, -1);
        assert.deepEqual(sum.toUint32Array(), want, `length ${length}, simd ${simd}`);
        const copy = sum.clone().add(x, -1);
        assert.deepEqual(sum.toUint32Array(), want, 'clone is independent');
        assert.equal(copy.toUint32Array()[0], (want[0] - x[0]) >>> 0);
      }
    }
    assert.equal(maskSumUsesSimd(), new MaskSum(4).simd);
    assert.throws(() => new MaskSum(4).add(new Uint32Array(5)), /MaskSum.add: words must be a Uint32Array of 4/);
    assert.throws(() => new MaskSum(4).addMask(new Uint8Array(31), 1), /MaskSum.addMask: seed/);
    assert.throws(() => new MaskSum(4).add(new Uint32Array(4), 2 as 1), /MaskSum.add: sign/);
    assert.throws(() => new MaskSum(-1), /MaskSum: length/);
  });

  it('x25519 (OpenSSL, keys imported once) gives tweetnacl scalarMult bytes, including odd and low-order public keys', () => {
    const sk = nacl.randomBytes(32);
    const agree = x25519Agreement(sk);
    const highBit = nacl.randomBytes(32);
    highBit[31] |= 0x80; // RFC 7748: ignored
    for (const pk of [nacl.box.keyPair().publicKey, nacl.randomBytes(32), highBit, X25519_BASE_POINT, new Uint8Array(32), Uint8Array.of(1, ...new Array<number>(31).fill(0))]) {
      const want = nacl.scalarMult(sk, pk);
      assert.deepEqual(agree(pk), want);
      assert.deepEqual(x25519(sk, pk), want);
    }
    assert.deepEqual(x25519(sk, X25519_BASE_POINT), nacl.scalarMult.base(sk));
    assert.throws(() => x25519(new Uint8Array(5), X25519_BASE_POINT));
  });

  it('pairwise seeds are SHA-512(X25519 ‖ context)[0:32] and agree from both ends', () => {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    const ctx = 'round-1|3|8';
    const shared = nacl.scalarMult(a.secretKey, b.publicKey);
    const want = nacl.hash(Uint8Array.from([...shared, ...new TextEncoder().encode(ctx)])).subarray(0, 32);
    assert.deepEqual(pairwiseSeed(a.secretKey, b.publicKey, ctx), want);
    assert.deepEqual(pairwiseSeeder(b.secretKey)(a.publicKey, ctx), want);
    assert.throws(() => pairwiseSeed(a.secretKey, new Uint8Array(3), ctx), /theirPublicKey must be 32 bytes/);
  });

  it('Shamir: reconstruction and consistency checks agree with shares made by plain Horner evaluation mod 2^521 − 1', () => {
    const rng = seededRng(11);
    const t = 9;
    const secret = nacl.randomBytes(32);
    const coef = [BigInt(`0x${Buffer.from(secret).toString('hex')}`), ...Array.from({ length: t - 1 }, () => BigInt(`0x${Buffer.from(nacl.randomBytes(64)).toString('hex')}`) % SHAMIR_PRIME)];
    const ids = Array.from({ length: 20 }, () => 1 + (rng.nextU32() % 1000)).filter((x, i, a) => a.indexOf(x) === i);
    const shares = ids.map((x) => ({ x, y: coef.reduceRight((acc, c) => (acc * BigInt(x) + c) % SHAMIR_PRIME, 0n) }));
    assert.deepEqual(combineShares(shares.slice(3, 3 + t), 32), secret);
    const ok = recoverSecret(shares, t, 32);
    assert.ok(ok.ok && ok.liars.length === 0 && ok.tried === 1);
    const lied = shares.map((s, i) => (i === 4 ? { x: s.x, y: (s.y + 1n) % SHAMIR_PRIME } : s));
    const found = recoverSecret(lied, t, 32);
    assert.ok(found.ok);
    if (found.ok) {
      assert.deepEqual(found.secret, secret);
      assert.deepEqual(found.liars, [shares[4].x]);
    }
  });
});
