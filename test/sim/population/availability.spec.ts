import assert from 'node:assert/strict';
import { seededRng } from '../../../random/rng.js';
import { buildAvailability, drawRound } from '../../../sim/population/availability.js';

describe('sim/population/availability', () => {
  it('a device checks in with probability q × its online probability (binomial test), at most once per round', () => {
    const av = buildAvailability({ devices: 2000, online: 0.7, spread: 0.4, dropout: 0.1, seed: 5 });
    const q = 0.05;
    const rounds = 400;
    const hits = new Uint32Array(2000);
    let drops = 0;
    let total = 0;
    const rng = seededRng(9);
    for (let r = 0; r < rounds; r++) {
      const d = drawRound(rng, q, av);
      assert.equal(new Set(d.map((x) => x.index)).size, d.length, 'a device twice in one draw');
      for (const x of d) {
        hits[x.index]++;
        if (x.dropsOut) drops++;
      }
      total += d.length;
    }
    // expected draws over all devices and rounds: Σ q·p_i·rounds; 5 binomial standard deviations
    const expected = [...av.online].reduce((s, p) => s + q * (p / 255) * rounds, 0);
    assert.ok(Math.abs(total - expected) < 5 * Math.sqrt(expected), `${total} draws, ${expected} expected`);
    // per device: inclusion never above q (the rate the ledger charges) beyond noise
    const p = q * rounds;
    assert.ok(Math.max(...hits) < p + 6 * Math.sqrt(p));
    assert.ok(Math.abs(drops / total - 0.1) < 5 * Math.sqrt(0.1 * 0.9 / total));
  });

  it('refuses bad options', () => {
    assert.throws(() => buildAvailability({ devices: 0 }), RangeError);
    assert.throws(() => buildAvailability({ devices: 5, online: 0 }), RangeError);
    assert.throws(() => buildAvailability({ devices: 5, dropout: 1 }), RangeError);
    assert.throws(() => drawRound(seededRng(1), 0, buildAvailability({ devices: 5 })), RangeError);
  });
});
