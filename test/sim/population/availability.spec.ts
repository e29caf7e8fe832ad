import assert from 'node:assert/strict';
import { seededRng } from '../../../random/rng.js';
import { buildAvailability, drawOnline } from '../../../sim/population/availability.js';

describe('sim/population/availability', () => {
  it('a device is online with its own probability (binomial test per device and overall), at most once per round; dropouts at the rate', () => {
    const av = buildAvailability({ devices: 2000, online: 0.7, spread: 0.4, dropout: 0.1, seed: 5 });
    const rounds = 300;
    const hits = new Uint32Array(2000);
    let drops = 0;
    let total = 0;
    const rng = seededRng(9);
    for (let r = 0; r < rounds; r++) {
      const d = drawOnline(rng, av);
      assert.equal(new Set(d.map((x) => x.index)).size, d.length, 'a device twice in one round');
      for (const x of d) {
        hits[x.index]++;
        if (x.dropsOut) drops++;
      }
      total += d.length;
    }
    // overall: Σ p_i·rounds within 5 binomial standard deviations
    const expected = [...av.online].reduce((s, p) => s + (p / 255) * rounds, 0);
    assert.ok(Math.abs(total - expected) < 5 * Math.sqrt(expected), `${total} online, ${expected} expected`);
    // per device: within 5.5 σ of its own p_i·rounds (2000 devices: a false alarm ≈ 1e-4)
    let worst = 0;
    av.online.forEach((b, i) => {
      const p = b / 255;
      worst = Math.max(worst, Math.abs(hits[i] - p * rounds) / Math.sqrt(rounds * p * (1 - p) + 1e-9));
    });
    assert.ok(worst < 5.5, `a device's online count is ${worst.toFixed(1)} σ from its probability`);
    // the spread is real: online probabilities span about 0.7 ± 0.2
    const ps = [...av.online].map((b) => b / 255);
    assert.ok(Math.min(...ps) < 0.55 && Math.max(...ps) > 0.85);
    assert.ok(Math.abs(drops / total - 0.1) < 5 * Math.sqrt(0.1 * 0.9 / total));
  });

  it('refuses bad options', () => {
    assert.throws(() => buildAvailability({ devices: 0 }), RangeError);
    assert.throws(() => buildAvailability({ devices: 5, online: 0 }), RangeError);
    assert.throws(() => buildAvailability({ devices: 5, dropout: 1 }), RangeError);
  });
});
