import assert from 'node:assert/strict';
import { FedAvgAccumulator, fedAvg } from '../../aggregators/index.js';

describe('aggregators/fedavg', () => {
  it('is the example-weighted mean (hand-computed)', () => {
    const r = fedAvg([
      { update: Float32Array.of(1, 0, -2), weight: 1 },
      { update: Float32Array.of(4, 2, 2), weight: 3 },
    ]);
    assert.deepEqual(Array.from(r), [13 / 4, 6 / 4, 4 / 4]);
  });

  it('streams: adding one at a time equals the one-shot mean, with O(model) state', () => {
    const ups = Array.from({ length: 50 }, (_, k) => ({ update: Float32Array.from({ length: 64 }, (_, i) => Math.cos(i + k)), weight: 1 + (k % 5) }));
    const acc = new FedAvgAccumulator(64);
    ups.forEach((u) => acc.add(u.update, u.weight));
    assert.equal(acc.count, 50);
    assert.deepEqual(acc.mean(), fedAvg(ups));
    const expect0 = ups.reduce((s, u) => s + u.weight * u.update[0], 0) / ups.reduce((s, u) => s + u.weight, 0);
    assert.ok(Math.abs(acc.mean()[0] - expect0) < 1e-6);
  });

  it('rejects wrong lengths, bad weights and non-finite values without changing its state', () => {
    const acc = new FedAvgAccumulator(2);
    acc.add(Float32Array.of(1, 1), 1);
    assert.throws(() => acc.add(Float32Array.of(1), 1), /update has 1 values, expected 2/);
    assert.throws(() => acc.add(Float32Array.of(1, 1), 0), /weight must be a positive finite number/);
    assert.throws(() => acc.add(Float32Array.of(1, Infinity), 1), /non-finite value at 1/);
    assert.equal(acc.count, 1);
    assert.deepEqual(Array.from(acc.mean()), [1, 1]);
    assert.throws(() => new FedAvgAccumulator(2).mean(), /no updates/);
  });
});
