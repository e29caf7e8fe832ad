import assert from 'node:assert/strict';
import { seededRng, nextGaussian } from '../../model/index.js';
import { boundNorms, bulyan, coordinateMedian, fedAvg, krum, multiKrum, multiKrumSelect, trimmedMean } from '../../aggregators/index.js';

const f32 = (...v: number[]): Float32Array => Float32Array.from(v);
const dist = (a: Float32Array, b: Float32Array): number => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));

/** n honest updates near `truth`, then attackers: sign-flipped and ×100 scaled copies. */
function population(honest: number, attackers: number, seed: number): { updates: Float32Array[]; truth: Float32Array } {
  const rng = seededRng(seed);
  const d = 20;
  const truth = Float32Array.from({ length: d }, (_, i) => Math.sin(i) + 0.5);
  const updates = Array.from({ length: honest }, () => Float32Array.from(truth, (v) => v + 0.05 * nextGaussian(rng)));
  for (let a = 0; a < attackers; a++) updates.push(Float32Array.from(truth, (v) => (a % 2 ? -v : 100 * v)));
  return { updates, truth };
}

describe('aggregators/robust', () => {
  it('median and trimmed mean match hand computation', () => {
    const u = [f32(1, 5, 3), f32(2, -1, 0), f32(10, 0, 0), f32(4, 4, 4)];
    assert.deepEqual(Array.from(coordinateMedian(u)), [3, 2, 1.5]);
    assert.deepEqual(Array.from(coordinateMedian(u.slice(0, 3))), [2, 0, 0]);
    const v = [f32(1), f32(2), f32(3), f32(4), f32(100)];
    assert.deepEqual(Array.from(trimmedMean(v, 0.2)), [3]); // drops 1 and 100
    assert.deepEqual(Array.from(trimmedMean(v, 0)), [22]);
  });

  it('Krum picks the update closest to its n − f − 2 neighbours (hand-computed)', () => {
    const u = [f32(0), f32(1), f32(2), f32(10), f32(-10)];
    // scores with f = 1 (2 nearest): 0→1+4=5, 1→1+1=2, 2→1+4=5, 10→64+81, −10→100+121
    assert.deepEqual(multiKrumSelect(u, 1, 3), [1, 0, 2]);
    assert.deepEqual(Array.from(krum(u, 1)), [1]);
    assert.deepEqual(Array.from(multiKrum(u, 1, 3)), [1]);
  });

  it('keeps the honest value under sign-flip and ×100 attackers where FedAvg does not', () => {
    const { updates, truth } = population(9, 2, 1);
    const avg = fedAvg(updates.map((u) => ({ update: u, weight: 1 })));
    assert.ok(dist(avg, truth) > 10, 'the attack must break plain averaging for the test to mean anything');
    for (const [name, agg] of [
      ['median', coordinateMedian(updates)],
      ['trimmed mean', trimmedMean(updates, 0.2)],
      ['krum', krum(updates, 2)],
      ['multi-krum', multiKrum(updates, 2)],
      ['bulyan', bulyan(updates, 2)],
    ] as const) {
      assert.ok(dist(agg, truth) < 0.2, `${name}: ${dist(agg, truth)}`);
    }
    const honestOnly = multiKrumSelect(updates, 2, 9);
    assert.ok(honestOnly.every((i) => i < 9), 'multi-Krum selects only honest updates');
  });

  it('refuses too few updates for f, naming the bound', () => {
    const { updates } = population(4, 2, 2);
    assert.throws(() => krum(updates, 2), /needs at least 7 updates to tolerate f = 2, got 6/);
    assert.throws(() => bulyan(population(7, 2, 3).updates, 2), /needs at least 11 updates/);
    assert.throws(() => trimmedMean(updates, 0.5), /beta must be in \[0, 0.5\)/);
    assert.throws(() => coordinateMedian([f32(1, 2), f32(1)]), /update 1 has 1 values, expected 2/);
    assert.throws(() => coordinateMedian([f32(NaN)]), /non-finite/);
  });

  it('bounds norms without changing directions', () => {
    const [a, b] = boundNorms([f32(3, 4), f32(0.3, 0.4)], 1);
    assert.ok(Math.abs(Math.hypot(a[0], a[1]) - 1) < 1e-6 && Math.hypot(a[0], a[1]) <= 1);
    assert.ok(Math.abs(a[0] / a[1] - 0.75) < 1e-6);
    assert.deepEqual(Array.from(b), Array.from(f32(0.3, 0.4)));
  });
});
