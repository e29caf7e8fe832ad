import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import {
  fixedPointScale,
  recoverSecret,
  SecAggCoordinator,
  SecAggDevice,
  SHAMIR_PRIME,
  splitSecret,
  type SecAggParams,
  type Share,
  type UnmaskResponse,
} from '../../../privacy/index.js';
import { seededRng } from '../../../random/rng.js';

/** A full in-process round of n devices (everyone masks); returns the coordinator, the request and the honest answers. */
function maskedRound(n: number, k: number, threshold: number) {
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const length = 64;
  const params: SecAggParams = { roundId: 'round-h', ids, k, threshold, length, scale: fixedPointScale(1, n), graphSeed: 7 };
  const signing = new Map(ids.map((id) => [id, nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(id))]));
  const signKeys = new Map(ids.map((id) => [id, signing.get(id)!.publicKey]));
  const devices = ids.map((id) => new SecAggDevice(id, params, signing.get(id)!.secretKey, seededRng(500 + id)));
  const coord = new SecAggCoordinator(params, signKeys);
  for (const d of devices) assert.ok(coord.acceptAdvert(d.advertise()));
  const routed = coord.routeShares(devices.flatMap((d) => d.shareKeys(coord.advertsForDevices(), signKeys)));
  for (const d of devices) d.receiveShares(routed.get(d.id) ?? [], coord.senders());
  const expected = new Float64Array(length);
  for (const d of devices) {
    const x = Float32Array.from({ length }, (_, i) => ((d.id * 31 + i * 7) % 19) / 40 - 0.2);
    x.forEach((v, i) => (expected[i] += Math.round(v * params.scale) / params.scale));
    assert.ok(coord.acceptMaskedInput(d.id, d.maskedInput(x)));
  }
  const req = coord.unmaskRequest();
  return { coord, params, answers: devices.map((d) => d.unmask(req)), expected };
}

const P = SHAMIR_PRIME;
const power = (b: bigint, e: bigint): bigint => {
  let r = 1n;
  for (b %= P; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
};
/** The Lagrange coefficient at 0 of holder `x` among holders `xs`. */
const lagrange = (x: number, xs: number[]): bigint =>
  xs.filter((j) => j !== x).reduce((acc, j) => (((acc * BigInt(j)) % P) * power((((BigInt(j) - BigInt(x)) % P) + P) % P, P - 2n)) % P, 1n);

/** `r` with its self-mask share of `owner` moved so that, combined with `holders`, the secret moves by exactly +1 (stays in range). */
const crafted = (r: UnmaskResponse, owner: number, holders: number[]): UnmaskResponse => {
  const s = r.selfMask.get(owner)!;
  const shift = power(lagrange(r.from, holders), P - 2n);
  return { ...r, selfMask: new Map([...r.selfMask, [owner, { x: s.x, y: (s.y + shift) % P }]]) };
};

/** `r` with every share value replaced by `y(old)`. */
const lying = (r: UnmaskResponse, y: (s: Share) => bigint): UnmaskResponse => ({
  from: r.from,
  selfMask: new Map([...r.selfMask].map(([o, s]) => [o, { x: s.x, y: y(s) }])),
  key: new Map([...r.key].map(([o, s]) => [o, { x: s.x, y: y(s) }])),
});

describe('privacy/secagg: false shares from a hostile participant', () => {
  const secret = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

  it('recoverSecret rebuilds the secret around liars it can outvote and names them', () => {
    const shares = splitSecret(secret, [1, 2, 3, 4, 5, 6, 7], 3, seededRng(2));
    const bad = shares.map((s) => (s.x === 2 || s.x === 6 ? { x: s.x, y: (s.y + 12345n) % SHAMIR_PRIME } : s));
    const r = recoverSecret(bad, 3, 32);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.deepEqual(r.secret, secret);
    assert.deepEqual(r.liars, [2, 6]);
    // honest shares: nothing left out
    const h = recoverSecret(shares, 3, 32);
    assert.ok(h.ok && h.liars.length === 0);
  });

  it('recoverSecret fails as a value when the liars cannot be told apart, and a verifier goes further', () => {
    const shares = splitSecret(secret, [1, 2, 3, 4], 3, seededRng(3));
    const bad = shares.map((s) => (s.x === 4 ? { x: 4, y: 99n } : s));
    const r = recoverSecret(bad, 3, 32);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /inconsistent/);
    // exactly t shares with a random lie: caught by the range check of the secret
    assert.equal(recoverSecret(bad.slice(1), 3, 32).ok, false);
    const v = recoverSecret(bad, 3, 32, (s) => Buffer.from(s).equals(secret));
    assert.ok(v.ok && Buffer.from(v.secret).equals(secret));
    assert.deepEqual(v.ok ? v.liars : [], [4]);
  });

  it('recoverSecret bounds its work: many liars give up with a reason, not a hang', () => {
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    const shares = splitSecret(secret, ids, 10, seededRng(4)).map((s) => (s.x % 3 === 0 ? { x: s.x, y: BigInt(s.x) } : s));
    const r = recoverSecret(shares, 10, 32, () => false);
    assert.equal(r.ok, false);
  });

  it('recoverSecret stops at the caller’s budget (maxTries) and says how many candidate sets it examined', () => {
    const ids = Array.from({ length: 30 }, (_, i) => i + 1);
    const shares = splitSecret(secret, ids, 10, seededRng(5)).map((s) => (s.x % 3 === 0 ? { x: s.x, y: BigInt(s.x) } : s));
    const r = recoverSecret(shares, 10, 32, () => false, 7);
    assert.equal(r.ok, false);
    assert.equal(r.tried, 7);
    assert.match(r.ok ? '' : r.reason, /within 7 tries/);
    const honest = recoverSecret(splitSecret(secret, ids, 10, seededRng(6)), 10, 32);
    assert.ok(honest.ok && honest.tried === 1);
    assert.throws(() => recoverSecret(shares, 10, 32, undefined, 0), /recoverSecret: maxTries must be a positive integer/);
  });

  it('the coordinator leaves out one participant’s random shares, names it, and still gets the exact sum', () => {
    const { coord, answers, expected } = maskedRound(9, 6, 4);
    const liar = 3;
    const r = coord.finish(answers.map((a) => (a.from === liar ? lying(a, () => BigInt(`0x${Buffer.from(nacl.randomBytes(60)).toString('hex')}`)) : a)));
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.deepEqual(r.misbehaving, [liar]);
    r.sum.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `coordinate ${i}: ${v} vs ${expected[i]}`));
  });

  it('with fewer honest shares than t the round fails as a value: never a throw, never a wrong sum', () => {
    // n = 5, k = 4, t = 3: two liars leave every owner two honest shares
    const { coord, answers } = maskedRound(5, 4, 3);
    const r = coord.finish(answers.map((a) => (a.from === 2 || a.from === 3 ? lying(a, (s) => (s.y + 1n) % SHAMIR_PRIME) : a)));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /inconsistent|do not reconstruct/);
  });

  it('shares outside the field, with another x, or about owners not asked for are left out and their sender named', () => {
    const { coord, answers, expected } = maskedRound(12, 10, 6);
    const tampered = answers.map((a) => {
      if (a.from === 1) return lying(a, () => SHAMIR_PRIME + 5n);
      if (a.from === 2) return { ...a, selfMask: new Map([...a.selfMask].map(([o, s]) => [o, { x: 9, y: s.y }])) };
      if (a.from === 5) return { ...a, key: new Map([[6, { x: 5, y: 1n }]]) }; // no key was asked for
      return a;
    });
    const r = coord.finish(tampered);
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.deepEqual(r.misbehaving, [1, 2, 5]);
    r.sum.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6));
  });

  it('a crafted lie (the seed moved by 1, still a valid seed) with exactly t shares is caught by the owner’s commitment: the round fails, no wrong sum', () => {
    // n = 5, k = 4, t = 3: device 5 masked but does not answer, so owner 1's seed has exactly the shares of 2, 3, 4
    const { coord, answers } = maskedRound(5, 4, 3);
    const r = coord.finish(answers.filter((a) => a.from !== 5).map((a) => (a.from === 2 ? crafted(a, 1, [2, 3, 4]) : a)));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /unmask device 1/);
  });

  it('with one share more than t, the commitment singles out the crafted lie: it is left out, its sender named, the sum exact', () => {
    const { coord, answers, expected } = maskedRound(5, 4, 3);
    const r = coord.finish(answers.map((a) => (a.from === 2 ? crafted(a, 1, [2, 3, 4]) : a)));
    assert.ok(r.ok, r.ok ? '' : r.reason);
    assert.deepEqual(r.misbehaving, [2]);
    r.sum.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6));
  });
});
