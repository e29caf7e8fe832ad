import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { nextGaussian, seededRng } from '../../../model/index.js';
import {
  combineShares,
  fixedPointScale,
  neighbourGraph,
  SecAggCoordinator,
  SecAggDevice,
  splitSecret,
  type KeyAdvert,
  type SecAggParams,
  type ShareMessage,
} from '../../../privacy/index.js';

interface Scenario {
  n: number;
  dropBeforeMasking?: number[];
  dropAfterMasking?: number[];
  k?: number;
  threshold?: number;
  length?: number;
}

function runRound(s: Scenario) {
  const ids = Array.from({ length: s.n }, (_, i) => i + 1);
  const length = s.length ?? 500;
  const params: SecAggParams = { roundId: 'round-7', ids, k: s.k ?? 14, threshold: s.threshold ?? 8, length, scale: fixedPointScale(1, s.n), graphSeed: 99 };
  const signing = new Map(ids.map((id) => [id, nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(id))]));
  const signKeys = new Map(ids.map((id) => [id, signing.get(id)!.publicKey]));
  const rng = seededRng(5);
  const updates = new Map(ids.map((id) => [id, Float32Array.from({ length }, () => Math.max(-1, Math.min(1, 0.3 * nextGaussian(rng))))]));
  const devices = new Map(ids.map((id) => [id, new SecAggDevice(id, params, signing.get(id)!.secretKey, seededRng(1000 + id))]));
  const coord = new SecAggCoordinator(params, signKeys);
  for (const d of devices.values()) assert.ok(coord.acceptAdvert(d.advertise()));
  const msgs: ShareMessage[] = [...devices.values()].flatMap((d) => d.shareKeys(coord.advertsForDevices(), signKeys));
  const routed = coord.routeShares(msgs);
  const senders = coord.senders();
  for (const d of devices.values()) d.receiveShares(routed.get(d.id) ?? [], senders);
  const before = new Set(s.dropBeforeMasking ?? []);
  const after = new Set(s.dropAfterMasking ?? []);
  const maskedInputs = new Map<number, Uint32Array>();
  for (const d of devices.values()) {
    if (before.has(d.id)) continue;
    const y = d.maskedInput(updates.get(d.id)!);
    maskedInputs.set(d.id, y);
    assert.ok(coord.acceptMaskedInput(d.id, y));
  }
  const req = coord.unmaskRequest();
  const responses = [...devices.values()].filter((d) => !before.has(d.id) && !after.has(d.id)).map((d) => d.unmask(req));
  const result = coord.finish(responses);
  const expected = new Float64Array(length);
  for (const id of ids) if (!before.has(id)) updates.get(id)!.forEach((v, i) => (expected[i] += Math.round(v * params.scale) / params.scale));
  return { result, expected, maskedInputs, params, devices, coord, signKeys, updates };
}

describe('privacy/secagg (SecAgg+)', () => {
  it('Shamir: any t shares rebuild the secret, t − 1 do not', () => {
    const rng = seededRng(1);
    const secret = nacl.randomBytes(32);
    const shares = splitSecret(secret, [3, 5, 8, 13, 21], 3, rng);
    assert.deepEqual(combineShares([shares[4], shares[0], shares[2]], 32), secret);
    assert.deepEqual(combineShares(shares.slice(1, 4), 32), secret);
    assert.throws(() => combineShares(shares.slice(0, 2), 32), /do not reconstruct/);
  });

  it('the neighbour graph is k-regular and symmetric', () => {
    const g = neighbourGraph(Array.from({ length: 20 }, (_, i) => i + 1), 6, 3);
    for (const [u, nb] of g) {
      assert.equal(new Set(nb).size, 6);
      for (const v of nb) assert.ok(g.get(v)!.includes(u));
    }
  });

  it('the secure sum equals the plaintext sum exactly for 20 devices with 30% dropping after masking', () => {
    const { result, expected } = runRound({ n: 20, dropAfterMasking: [2, 5, 9, 11, 16, 20] });
    assert.ok(result.ok, result.ok ? '' : result.reason);
    if (!result.ok) return;
    assert.equal(result.included.length, 20);
    result.sum.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `coordinate ${i}: ${v} vs ${expected[i]}`));
  });

  it('removes the pairwise masks of devices that dropped before masking', () => {
    const { result, expected } = runRound({ n: 20, dropBeforeMasking: [4, 7], dropAfterMasking: [1, 10] });
    assert.ok(result.ok);
    if (!result.ok) return;
    assert.deepEqual(result.included.includes(4) || result.included.includes(7), false);
    result.sum.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6));
  });

  it('fails cleanly when dropouts exceed what the threshold can recover', () => {
    const { result } = runRound({ n: 12, k: 6, threshold: 4, dropAfterMasking: [1, 2, 3, 4, 5, 6, 7], length: 50 });
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /shares needed/);
  });

  it('one masked input is statistically indistinguishable from uniform (chi-square over bytes)', () => {
    const { maskedInputs } = runRound({ n: 10, k: 4, threshold: 3, length: 20000 });
    // (the self mask alone would make it uniform; the exact-sum tests above show the pairwise
    // masks cancel, so together these cover both)
    const bytes = new Uint8Array(maskedInputs.get(3)!.buffer);
    const counts = new Float64Array(256);
    bytes.forEach((b) => counts[b]++);
    const e = bytes.length / 256;
    const chi2 = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    // 255 degrees of freedom: mean 255, sd ≈ 22.6; 350 is beyond the 99.99th percentile
    assert.ok(chi2 < 350, `chi-square ${chi2}`);
  });

  it('rejects unsigned, replayed and other-round adverts, and never reveals both secrets of one device', () => {
    const { params, devices, coord, signKeys } = runRound({ n: 10, k: 4, threshold: 3, length: 10 });
    const d1 = devices.get(1)!;
    const advert = d1.advertise();
    assert.equal(coord.acceptAdvert(advert), false, 'a second advert from device 1 in the same round is a replay');
    const fresh = new SecAggCoordinator({ ...params, roundId: 'round-8' }, signKeys);
    assert.equal(fresh.acceptAdvert(advert), false, 'an advert signed for round 7 is refused in round 8');
    const unsigned: KeyAdvert = { ...advert, signature: new Uint8Array(64) };
    const other = new SecAggCoordinator(params, signKeys);
    assert.equal(other.acceptAdvert(unsigned), false);
    assert.equal(other.acceptAdvert({ ...advert, id: 2 }), false, 'device 1 cannot advertise as device 2');
    assert.equal(other.acceptAdvert(advert), true);
    const fresh2 = new SecAggDevice(1, params, nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(1)).secretKey, seededRng(1));
    assert.throws(() => fresh2.unmask({ selfMaskOf: [2], keyOf: [2] }), /both secrets of device 2/);
  });

  it('answers one unmask request per round, so a coordinator cannot ask for the other secret later', () => {
    const { devices, coord } = runRound({ n: 10, k: 4, threshold: 3, length: 10 });
    // every surviving device already answered inside runRound
    const d = devices.get(3)!;
    assert.throws(() => d.unmask({ selfMaskOf: [], keyOf: [2] }), /already answered/);
    assert.deepEqual(coord.unmaskRequest(), coord.unmaskRequest(), 'the request is frozen once issued');
  });

  it('refuses masked inputs that arrive after the unmask request', () => {
    const { coord, params } = runRound({ n: 10, k: 4, threshold: 3, length: 10, dropBeforeMasking: [5] });
    assert.equal(coord.acceptMaskedInput(5, new Uint32Array(params.length)), false);
    assert.ok(coord.unmaskRequest().keyOf.includes(5));
    assert.ok(!coord.unmaskRequest().selfMaskOf.includes(5));
  });

  it('a device aborts when an announced neighbour’s share is missing (no silently wrong sum)', () => {
    const ids = Array.from({ length: 8 }, (_, i) => i + 1);
    const params: SecAggParams = { roundId: 'r', ids, k: 4, threshold: 3, length: 4, scale: fixedPointScale(1, 8), graphSeed: 1 };
    const signing = new Map(ids.map((id) => [id, nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(id))]));
    const signKeys = new Map(ids.map((id) => [id, signing.get(id)!.publicKey]));
    const devices = ids.map((id) => new SecAggDevice(id, params, signing.get(id)!.secretKey, seededRng(id)));
    const coord = new SecAggCoordinator(params, signKeys);
    devices.forEach((d) => coord.acceptAdvert(d.advertise()));
    const msgs = devices.flatMap((d) => d.shareKeys(coord.advertsForDevices(), signKeys));
    const routed = coord.routeShares(msgs);
    const victim = devices[0];
    const lost = (routed.get(victim.id) ?? []).slice(1); // one share to device 1 lost in transit
    assert.throws(() => victim.receiveShares(lost, coord.senders()), /no valid share from announced neighbour/);
  });

  it('validates round parameters: k/2 < t ≤ k, distinct ids', () => {
    const base: SecAggParams = { roundId: 'r', ids: [1, 2, 3, 4, 5, 6], k: 4, threshold: 3, length: 4, scale: 100, graphSeed: 1 };
    assert.throws(() => new SecAggCoordinator({ ...base, threshold: 2 }, new Map()), /threshold must be an integer in \(k\/2, k\]/);
    assert.throws(() => new SecAggCoordinator({ ...base, ids: [1, 1, 2, 3, 4, 5] }, new Map()), /distinct positive integers/);
    assert.throws(() => fixedPointScale(1e6, 1e4), /do not fit in 32 bits/);
  });
});
