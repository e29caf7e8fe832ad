/** server/sampling.ts: the sampler's coins and draws, checked against their distributions. */
import assert from 'node:assert/strict';
import { seededRng } from '../../model/index.js';
import { RoundSampler, sampleWithoutReplacement, uniformBelow } from '../../server/sampling.js';

/** Upper 0.001 quantile of χ² with `df` degrees of freedom (Wilson–Hilferty approximation, z = 3.0902). */
function chiSquareCritical(df: number): number {
  const z = 3.0902;
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

describe('server/sampling', () => {
  it('uniformBelow is uniform (χ², α = 0.001) and refuses a bad n', () => {
    const rng = seededRng(1);
    const n = 7;
    const trials = 70_000;
    const counts = new Array<number>(n).fill(0);
    for (let i = 0; i < trials; i++) counts[uniformBelow(rng, n)]++;
    const e = trials / n;
    const chi = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    assert.ok(chi < chiSquareCritical(n - 1), `χ² = ${chi}`);
    assert.throws(() => uniformBelow(rng, 0), /uniformBelow: n must be/);
    assert.throws(() => uniformBelow(rng, 1.5), RangeError);
  });

  it('sampleWithoutReplacement: distinct items, each included with probability m/n, every m-subset equally likely (χ², α = 0.001)', () => {
    const rng = seededRng(2);
    const items = ['a', 'b', 'c', 'd', 'e'];
    const trials = 20_000;
    const subsets = new Map<string, number>();
    for (let i = 0; i < trials; i++) {
      const s = sampleWithoutReplacement(rng, items, 2);
      assert.equal(new Set(s).size, 2);
      const key = [...s].sort().join('');
      subsets.set(key, (subsets.get(key) ?? 0) + 1);
    }
    assert.equal(subsets.size, 10, 'C(5, 2) subsets');
    const e = trials / 10;
    const chi = [...subsets.values()].reduce((s, c) => s + (c - e) ** 2 / e, 0);
    assert.ok(chi < chiSquareCritical(9), `χ² = ${chi}`);
    assert.deepEqual(sampleWithoutReplacement(rng, items, 9).sort(), items, 'm ≥ n takes them all');
  });

  it('poisson: one coin per device, kept; no coin after the selection closes; no cap', () => {
    const s = new RoundSampler('poisson', 0.5, 1, seededRng(3));
    const first = Array.from({ length: 200 }, (_, i) => s.admit(`d${i}`));
    for (let k = 0; k < 3; k++) for (let i = 0; i < 200; i++) assert.equal(s.admit(`d${i}`), first[i], 'a re-check-in gets the same answer');
    const heads = first.filter((a) => a === 'sampled').length;
    assert.equal(s.sampled, heads);
    assert.equal(s.eligible, 200);
    assert.ok(heads > 60 && heads < 140, `${heads} of 200 at q = 0.5 (no cap)`);
    assert.equal(s.closeSelection().length, heads);
    assert.equal(s.admit('late'), 'closed');
    assert.equal(s.eligible, 200);
    assert.throws(() => new RoundSampler('poisson', 0, 1, seededRng(1)), /rate must be in \(0, 1\]/);
  });

  it('fixed-cohort: candidates wait for the draw; after it, the chosen are sampled, the others not, late comers closed', () => {
    const s = new RoundSampler('fixed-cohort', 0, 3, seededRng(4));
    for (let i = 0; i < 6; i++) assert.equal(s.admit(`d${i}`), 'pending');
    const chosen = s.closeSelection();
    assert.equal(chosen.length, 3);
    for (let i = 0; i < 6; i++) assert.equal(s.admit(`d${i}`), chosen.includes(`d${i}`) ? 'sampled' : 'not-sampled');
    assert.equal(s.admit('late'), 'closed');
    assert.equal(s.eligible, 6);
    assert.equal(s.sampled, 3);
  });
});
