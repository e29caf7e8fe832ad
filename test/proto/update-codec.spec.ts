import assert from 'node:assert/strict';
import { seededRng } from '../../model/index.js';
import { decodeUpdate, encodedUpdateBytes, encodeUpdate, UPDATE_QUANT_BLOCK, WireFormatError } from '../../proto/index.js';

function l2(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

describe('proto: update encodings (f32, q8, q4)', () => {
  const rng = seededRng(3);
  const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 0.37) * (i % 7) * 0.01);

  it('f32 is exact; q8 and q4 are the sizes they claim, stay within their slack bound, and reject bad bytes', () => {
    const f = decodeUpdate('f32', encodeUpdate(x), x.length);
    assert.deepEqual(f.update, x);
    assert.equal(f.slack, 0);
    for (const enc of ['q8', 'q4'] as const) {
      const bytes = encodeUpdate(x, enc, rng);
      assert.equal(bytes.length, encodedUpdateBytes(enc, x.length));
      const d = decodeUpdate(enc, bytes, x.length);
      assert.ok(l2(d.update, x) <= d.slack, `${enc}: error ${l2(d.update, x)} > slack ${d.slack}`);
      assert.ok(d.slack > 0);
      assert.throws(() => decodeUpdate(enc, bytes.subarray(1), x.length), WireFormatError);
      const bad = Uint8Array.from(bytes);
      new DataView(bad.buffer).setFloat32(0, Number.NaN, true);
      assert.throws(() => decodeUpdate(enc, bad, x.length), /scales must be finite/);
    }
    assert.equal(encodedUpdateBytes('q8', 1000), 1000 + 4 * Math.ceil(1000 / UPDATE_QUANT_BLOCK));
    assert.equal(encodedUpdateBytes('q4', 1000), 500 + 4 * Math.ceil(1000 / UPDATE_QUANT_BLOCK));
    // a 4-bit level of −8 is outside the symmetric range the encoder uses
    const q4 = encodeUpdate(x, 'q4', rng);
    q4[4 * Math.ceil(1000 / UPDATE_QUANT_BLOCK)] = 0x08;
    assert.throws(() => decodeUpdate('q4', q4, x.length), /outside ±7/);
    assert.throws(() => decodeUpdate('bf16', new Uint8Array(0), 0), /unknown update encoding/);
    assert.throws(() => encodeUpdate(x, 'q8'), /needs an rng/);
  });

  it('q8 and q4 decode unbiased: the mean over many encodings converges to the input', () => {
    for (const enc of ['q8', 'q4'] as const) {
      const n = 400;
      const sum = new Float64Array(x.length);
      for (let k = 0; k < n; k++) decodeUpdate(enc, encodeUpdate(x, enc, rng), x.length).update.forEach((v, i) => (sum[i] += v / n));
      // per-value error of one draw is < its block's step s; the mean of n draws has std ≤ s/(2√n)
      const d = decodeUpdate(enc, encodeUpdate(x, enc, rng), x.length);
      const step = d.slack / Math.sqrt(x.length); // rms step
      let worst = 0;
      sum.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - x[i]))));
      assert.ok(worst < (5 * step) / (2 * Math.sqrt(n)) + 1e-7, `${enc}: worst mean error ${worst}, step ${step}`);
    }
  });
});
