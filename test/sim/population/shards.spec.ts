import assert from 'node:assert/strict';
import { seededRng } from '../../../random/rng.js';
import { buildShards, dirichletDraw, gammaDraw, parseShardScheme } from '../../../sim/population/shards.js';

const LENGTHS = [400_000, 300_000, 500_000, 200_000, 600_000];

describe('sim/population/shards', () => {
  it('draws Gamma(a) with mean a and variance a (a < 1 and a ≥ 1)', () => {
    for (const a of [0.3, 2.5]) {
      const rng = seededRng(7);
      const xs = Array.from({ length: 20_000 }, () => gammaDraw(rng, a));
      const m = xs.reduce((s, x) => s + x, 0) / xs.length;
      const v = xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length;
      // standard error of the mean is √(a/n): 5 of them
      assert.ok(Math.abs(m - a) < 5 * Math.sqrt(a / xs.length), `mean ${m} for shape ${a}`);
      assert.ok(Math.abs(v / a - 1) < 0.1, `variance ${v} for shape ${a}`);
    }
  });

  it('draws Dirichlet(α) vectors that sum to 1 with the published moments (mean 1/k, var (1/k)(1−1/k)/(kα+1))', () => {
    const rng = seededRng(3);
    const k = 5;
    const alpha = 0.3;
    const draws = Array.from({ length: 10_000 }, () => dirichletDraw(rng, alpha, k));
    for (const p of draws) assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12 && p.every((x) => x >= 0));
    const first = draws.map((p) => p[0]);
    const m = first.reduce((a, b) => a + b, 0) / first.length;
    const v = first.reduce((a, b) => a + (b - m) ** 2, 0) / first.length;
    const wantVar = ((1 / k) * (1 - 1 / k)) / (k * alpha + 1);
    assert.ok(Math.abs(m - 1 / k) < 0.01, `mean ${m}`);
    assert.ok(Math.abs(v / wantVar - 1) < 0.08, `variance ${v} vs ${wantVar}`);
  });

  it('dirichlet shards: per-device proportions sum to 1, small α concentrates a device on few domains, segments stay inside their domain', () => {
    const t = buildShards({ domainLengths: LENGTHS, devices: 2000, scheme: { kind: 'dirichlet', alpha: 0.1 }, seed: 1 });
    let single = 0;
    for (let i = 0; i < t.devices; i++) {
      const p = t.proportions(i, LENGTHS.length);
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-9);
      if (Math.max(...p) > 0.9) single++;
      for (const s of t.segments(i)) assert.ok(s.offset + s.length <= LENGTHS[s.domain] && s.length > 0);
    }
    assert.ok(single / t.devices > 0.5, `only ${single} of ${t.devices} devices are (almost) single-domain at α = 0.1`);
    const wide = buildShards({ domainLengths: LENGTHS, devices: 500, scheme: { kind: 'dirichlet', alpha: 100 }, meanChars: 20_000, seed: 1 });
    const spread = Array.from({ length: 500 }, (_, i) => wide.segments(i).length);
    assert.ok(spread.filter((n) => n === LENGTHS.length).length > 450, 'α = 100 mixes every domain');
  });

  it('natural shards: one domain each, contiguous and disjoint slices laid within the domain', () => {
    const t = buildShards({ domainLengths: LENGTHS, devices: 1000, scheme: { kind: 'natural' }, seed: 2 });
    const byDomain = LENGTHS.map(() => [] as [number, number][]);
    for (let i = 0; i < t.devices; i++) {
      const segs = t.segments(i);
      assert.equal(segs.length, 1);
      assert.equal(segs[0].domain, i % LENGTHS.length);
      byDomain[segs[0].domain].push([segs[0].offset, segs[0].offset + segs[0].length]);
    }
    for (const [d, iv] of byDomain.entries()) {
      iv.sort((a, b) => a[0] - b[0]);
      for (let k = 1; k < iv.length; k++) assert.ok(iv[k][0] >= iv[k - 1][1], `domain ${d}: slices overlap`);
      assert.ok(iv[iv.length - 1][1] <= LENGTHS[d]);
    }
    // a domain too short for its devices: slices shrink to fit, still disjoint
    const tight = buildShards({ domainLengths: [10_000], devices: 50, scheme: { kind: 'natural' }, seed: 2 });
    assert.ok(tight.segments(49)[0].offset + tight.segments(49)[0].length <= 10_000);
  });

  it('sizes are unbalanced like a lognormal: coefficient of variation ≈ √(e^{σ²} − 1)', () => {
    const sigma = 1;
    const t = buildShards({ domainLengths: [1e9], devices: 5000, scheme: { kind: 'natural' }, meanChars: 5000, sizeSigma: sigma, minSegmentChars: 1, seed: 4 });
    const sizes = Array.from({ length: t.devices }, (_, i) => t.chars(i));
    const m = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    const cv = Math.sqrt(sizes.reduce((a, b) => a + (b - m) ** 2, 0) / sizes.length) / m;
    assert.ok(Math.abs(m / 5000 - 1) < 0.08, `mean size ${m}`);
    assert.ok(Math.abs(cv / Math.sqrt(Math.E ** (sigma * sigma) - 1) - 1) < 0.25, `cv ${cv}`);
    const sorted = [...sizes].sort((a, b) => a - b);
    assert.ok(sorted[Math.floor(0.95 * sorted.length)] > 3 * sorted[sorted.length >> 1], 'the largest devices hold several times the median');
  });

  it('a shard is a pointer: its text is cut from the domain texts, and the table costs a few bytes per device', () => {
    const texts = ['abcdefghij'.repeat(100), '0123456789'.repeat(100)];
    const t = buildShards({ domainLengths: texts.map((x) => x.length), devices: 10, scheme: { kind: 'natural' }, meanChars: 50, minSegmentChars: 10, seed: 1 });
    for (let i = 0; i < 10; i++) {
      const [s] = t.segments(i);
      assert.equal(t.texts(i, texts)[0], texts[s.domain].slice(s.offset, s.offset + s.length));
    }
    const big = buildShards({ domainLengths: LENGTHS, devices: 10_000, scheme: { kind: 'dirichlet', alpha: 0.3 }, seed: 1 });
    assert.ok(big.bytes / 10_000 < 64, `${big.bytes / 10_000} bytes per device`);
  });

  it('parses schemes and refuses bad ones', () => {
    assert.deepEqual(parseShardScheme('natural'), { kind: 'natural' });
    assert.deepEqual(parseShardScheme('dirichlet:0.3'), { kind: 'dirichlet', alpha: 0.3 });
    for (const bad of ['dirichlet', 'dirichlet:0', 'dirichlet:-1', 'iid']) assert.throws(() => parseShardScheme(bad), RangeError);
    assert.throws(() => buildShards({ domainLengths: [], devices: 1, scheme: { kind: 'natural' } }), RangeError);
    assert.throws(() => buildShards({ domainLengths: [10], devices: 0, scheme: { kind: 'natural' } }), RangeError);
  });
});
