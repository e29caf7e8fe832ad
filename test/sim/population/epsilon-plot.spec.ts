import assert from 'node:assert/strict';
import { lossVsEpsilonSvg } from '../../../sim/population/epsilon-plot.js';

describe('sim/population/epsilon-plot', () => {
  it('draws one line per cohort on a log₂ ε axis, with base and non-private reference lines', () => {
    const svg = lossVsEpsilonSvg('t <&>', [
      { label: 'cohort 100', color: '#111111', points: [[8, 4.0], [1, 4.2], [2, 4.1]], nonPrivate: 3.9 },
      { label: 'cohort 500', color: '#222222', points: [[8, 3.95]] },
    ], 4.3);
    assert.match(svg, /^<svg /);
    assert.match(svg, /t &lt;&amp;&gt;/);
    assert.equal((svg.match(/<polyline /g) ?? []).length, 2);
    assert.equal((svg.match(/<circle /g) ?? []).length, 4);
    // log axis: ε = 1, 2, 8 sit at x0, x0 + w/3, x0 + w (equal steps per doubling)
    const xs = [...svg.matchAll(/<polyline [^>]*stroke="#111111"[^>]*points="([^"]+)"/g)][0][1].split(' ').map((p) => Number(p.split(',')[0]));
    assert.ok(Math.abs((xs[1] - xs[0]) * 3 - (xs[2] - xs[0])) < 1e-9, xs.join(','));
    assert.ok(xs[0] < xs[1] && xs[1] < xs[2], 'points are sorted by ε');
    assert.throws(() => lossVsEpsilonSvg('x', [], 1), RangeError);
    assert.throws(() => lossVsEpsilonSvg('x', [{ label: 'a', color: '#000', points: [[0, 1]] }], 1), RangeError);
  });
});
