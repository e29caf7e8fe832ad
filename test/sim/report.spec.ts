import assert from 'node:assert/strict';
import { formatBytes, lossPlotSvg, lossTable, mean } from '../../sim/index.js';

describe('sim/report', () => {
  it('tables hold every domain, the mean and TinyStories, and bytes when given', () => {
    const t = lossTable(['oz', 'sotu'], [
      { label: 'base only', domains: [4, 3], mean: 3.5, tinyStories: 1.6 },
      { label: 'round 1', domains: [3.5, 2.5], mean: 3, tinyStories: 1.55, bytesUp: 2048, bytesDown: 3 * 1024 * 1024, seconds: 12.34 },
    ]);
    const lines = t.split('\n');
    assert.equal(lines.length, 4);
    assert.match(lines[0], /\| +\| oz \| sotu \| mean \| TinyStories \| bytes up \| bytes down \| seconds \|/);
    assert.match(lines[3], /\| round 1 \| 3.500 \| 2.500 \| 3.000 \| 1.550 \| 2.00 KiB \| 3.00 MiB \| 12.3 \|/);
    assert.equal(formatBytes(512), '512 B');
    assert.equal(mean([1, 2, 6]), 3);
    assert.throws(() => mean([]), RangeError);
  });

  it('the plot has one line per series, a legend entry each, and finite coordinates', () => {
    const svg = lossPlotSvg('t', [
      { label: 'fed', values: [4, 3.5, 3.2], color: '#000' },
      { label: 'base', values: [4], color: '#777', dashed: true },
    ]);
    assert.ok(svg.startsWith('<svg') && svg.trim().endsWith('</svg>'));
    assert.equal((svg.match(/<polyline/g) ?? []).length, 2);
    assert.equal((svg.match(/<circle/g) ?? []).length, 3);
    assert.ok(svg.includes('>fed</text>') && svg.includes('>base</text>'));
    assert.ok(!/NaN|Infinity/.test(svg));
  });
});
