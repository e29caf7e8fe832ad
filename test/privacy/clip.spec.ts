import assert from 'node:assert/strict';
import { CLIP_TOLERANCE, clipToNorm, l2Norm, withinClipBound } from '../../privacy/index.js';

describe('privacy/clip', () => {
  it('scales an update above C onto the ball, keeping its direction', () => {
    const u = Float32Array.of(3, 4, 0, -12); // norm 13
    const r = clipToNorm(u, 1.3);
    assert.equal(r.clipped, true);
    assert.ok(Math.abs(r.norm - 13) < 1e-12);
    assert.ok(l2Norm(r.update) <= 1.3);
    assert.ok(l2Norm(r.update) > 1.3 * (1 - 1e-5));
    const ratio = r.update[0] / u[0];
    r.update.forEach((v, i) => assert.ok(Math.abs(v - ratio * u[i]) < 1e-6, `value ${i}`));
  });

  it('leaves an update within C unchanged (as a copy)', () => {
    const u = Float32Array.of(0.1, -0.2);
    const r = clipToNorm(u, 1);
    assert.equal(r.clipped, false);
    assert.deepEqual(r.update, u);
    assert.notEqual(r.update, u);
  });

  it('never exceeds C on many random updates (float32 rounding included)', () => {
    for (let k = 0; k < 200; k++) {
      const u = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * (k + 1)) * (k + 1));
      const c = 0.01 + (k % 7) * 0.3;
      assert.ok(l2Norm(clipToNorm(u, c).update) <= c);
    }
  });

  it('one tolerance: clipping lands within C·(1 − CLIP_TOLERANCE); the bound check allows C·(1 + CLIP_TOLERANCE) plus slack', () => {
    const c = 0.7;
    const r = clipToNorm(Float32Array.from({ length: 4096 }, (_, i) => Math.cos(i)), c);
    assert.ok(l2Norm(r.update) <= c * (1 - CLIP_TOLERANCE) * (1 + 1e-7));
    assert.ok(withinClipBound(l2Norm(r.update), c));
    assert.equal(withinClipBound(c * (1 + CLIP_TOLERANCE), c), true);
    assert.equal(withinClipBound(c * (1 + 2 * CLIP_TOLERANCE), c), false);
    assert.equal(withinClipBound(c + 0.1, c, 0.1), true);
    assert.equal(withinClipBound(Number.NaN, c), false);
    assert.throws(() => withinClipBound(1, 0), /withinClipBound: c must be a positive finite number/);
    assert.throws(() => withinClipBound(1, 1, -1), /withinClipBound: slack must be a finite number ≥ 0/);
  });

  it('rejects a bad C or non-finite values, naming the argument', () => {
    assert.throws(() => clipToNorm(Float32Array.of(1), 0), /clipToNorm: c must be a positive finite number/);
    assert.throws(() => clipToNorm(Float32Array.of(1, NaN), 1), /non-finite/);
    assert.throws(() => clipToNorm([1] as unknown as Float32Array, 1), TypeError);
  });
});
