import assert from 'node:assert/strict';
import { nextGaussian, seededRng } from '../../model/index.js';
import { CentralDpStrategy, DeviceDpStrategy, FedAvgStrategy, RobustStrategy, type ClientResult } from '../../aggregators/index.js';
import { addGaussianNoise } from '../../privacy/noise.js';

const res = (id: string, update: number[], n: number): ClientResult => ({ deviceId: id, update: Float32Array.from(update), numExamples: n });

describe('aggregators/strategy', () => {
  it('FedAvg moves the global vector by the example-weighted mean delta', () => {
    const s = new FedAvgStrategy();
    const out = s.aggregate(1, Float32Array.of(1, 1), [res('a', [1, 0], 1), res('b', [0, 2], 3)], [{ deviceId: 'c', reason: 'dropped' }]);
    assert.deepEqual(Array.from(out.global), [1.25, 2.5]);
    assert.equal(out.metrics.failures, 1);
    assert.throws(() => new FedAvgStrategy({ minResults: 3 }).aggregate(2, Float32Array.of(0), [res('a', [1], 1)], []), /fewer than the minimum 3/);
  });

  it('the robust wrapper keeps attackers out of any inner strategy', () => {
    const rng = seededRng(4);
    const honest = Array.from({ length: 8 }, (_, k) => res(`h${k}`, Array.from({ length: 5 }, () => 0.1 + 0.01 * nextGaussian(rng)), 10));
    const attackers = [res('x1', [100, 100, 100, 100, 100], 1000), res('x2', [-50, -50, -50, -50, -50], 1000)];
    const all = [...honest, ...attackers];
    const plain = new FedAvgStrategy().aggregate(1, new Float32Array(5), all, []).global;
    assert.ok(Math.abs(plain[0]) > 10);
    for (const rule of [{ rule: 'median' } as const, { rule: 'trimmed-mean', beta: 0.2 } as const, { rule: 'krum', f: 2 } as const]) {
      const g = new RobustStrategy(new FedAvgStrategy(), rule).aggregate(1, new Float32Array(5), all, []).global;
      g.forEach((v) => assert.ok(Math.abs(v - 0.1) < 0.05, `${rule.rule}: ${v}`));
    }
  });

  it('the central DP wrapper clips, averages over the expected cohort and adds noise of std zC/m (measured)', () => {
    const d = 100_000;
    const s = new CentralDpStrategy(new FedAvgStrategy(), { clipNorm: 0.5, noiseMultiplier: 1.2, expectedClients: 10, rng: seededRng(9) });
    assert.equal(s.configureRound(3).clipNorm, 0.5);
    const big = new Float32Array(d);
    big[0] = 5; // norm 5 → clipped to 0.5
    const out = s.aggregate(3, new Float32Array(d), [{ deviceId: 'a', update: big, numExamples: 1 }], []);
    assert.equal(out.metrics.clippedByServer, 1);
    let mean = 0;
    for (let i = 1; i < d; i++) mean += out.global[i];
    mean /= d - 1;
    let v = 0;
    for (let i = 1; i < d; i++) v += (out.global[i] - mean) ** 2;
    const std = Math.sqrt(v / (d - 2));
    assert.ok(Math.abs(std / ((1.2 * 0.5) / 10) - 1) < 0.02, `measured std ${std}`);
    assert.ok(Math.abs(out.global[0] - 0.05) < 0.3, 'the clipped update survives on average');
  });
});

describe('aggregators/strategy: round plans', () => {
  it('plain strategies ask devices for nothing; the DP wrappers say C and the device noise std', () => {
    assert.deepEqual(new FedAvgStrategy().configureRound(2), { round: 2, clipNorm: 0, deviceNoiseStd: 0 });
    assert.deepEqual(new RobustStrategy(new FedAvgStrategy(), { rule: 'median' }).configureRound(2), { round: 2, clipNorm: 0, deviceNoiseStd: 0 });
    const central = new CentralDpStrategy(new FedAvgStrategy(), { clipNorm: 0.5, noiseMultiplier: 1, expectedClients: 4, rng: seededRng(1) });
    assert.deepEqual(central.configureRound(3), { round: 3, clipNorm: 0.5, deviceNoiseStd: 0 });
    const device = new DeviceDpStrategy(new RobustStrategy(new FedAvgStrategy(), { rule: 'median' }), { clipNorm: 0.25, deviceNoiseStd: 0.1 });
    assert.deepEqual(device.configureRound(4), { round: 4, clipNorm: 0.25, deviceNoiseStd: 0.1 });
    assert.throws(() => new DeviceDpStrategy(new FedAvgStrategy(), { clipNorm: 0, deviceNoiseStd: 0 }), /DeviceDpStrategy: clipNorm must be a positive number/);
    assert.throws(() => new DeviceDpStrategy(new FedAvgStrategy(), { clipNorm: 1, deviceNoiseStd: Number.NaN }), /deviceNoiseStd/);
  });

  it('the device-side wrapper aggregates as its inner strategy does (devices clipped and noised already)', () => {
    const results = [res('a', [1, 0], 1), res('b', [0, 2], 3)];
    const plain = new FedAvgStrategy().aggregate(1, Float32Array.of(1, 1), results, []);
    const wrapped = new DeviceDpStrategy(new FedAvgStrategy(), { clipNorm: 1, deviceNoiseStd: 0.5 }).aggregate(1, Float32Array.of(1, 1), results, []);
    assert.deepEqual(wrapped, plain);
  });

  it('central noise is privacy/noise addGaussianNoise over the clipped sum (same draws from the same rng)', () => {
    const d = 64;
    const up = Float32Array.from({ length: d }, (_, i) => 0.01 * Math.sin(i));
    const out = new CentralDpStrategy(new FedAvgStrategy(), { clipNorm: 1, noiseMultiplier: 0.8, expectedClients: 5, rng: seededRng(11) }).aggregate(1, new Float32Array(d), [res('a', Array.from(up), 1)], []);
    const want = addGaussianNoise(up, 0.8, seededRng(11));
    for (let i = 0; i < d; i++) assert.ok(Math.abs(out.global[i] - Math.fround(want[i] / 5)) < 1e-7, `${i}: ${out.global[i]} vs ${want[i] / 5}`);
  });
});
