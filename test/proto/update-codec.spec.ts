import assert from 'node:assert/strict';
import { seededRng } from '../../model/index.js';
import { stochasticQuantize, type QuantizedUpdate } from '../../privacy/compress.js';
import { decodeUpdate, encodedUpdateBytes, encodeUpdate, UPDATE_QUANT_BLOCK, WireFormatError } from '../../proto/index.js';

function l2(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

describe('proto: update encodings (f32, q8, q4)', () => {
  const rng = seededRng(3);
  const x = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 0.37) * (i % 7) * 0.01);
  const quantize = (v: Float32Array, enc: 'q8' | 'q4'): QuantizedUpdate => stochasticQuantize(v, enc === 'q8' ? 8 : 4, rng, UPDATE_QUANT_BLOCK);

  it('f32 is exact; q8 and q4 are the sizes they claim, stay within their slack bound, and reject bad bytes', () => {
    const f = decodeUpdate('f32', encodeUpdate(x), x.length);
    assert.deepEqual(f.update, x);
    assert.equal(f.slack, 0);
    for (const enc of ['q8', 'q4'] as const) {
      const bytes = encodeUpdate(quantize(x, enc));
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
    const q4 = encodeUpdate(quantize(x, 'q4'));
    q4[4 * Math.ceil(1000 / UPDATE_QUANT_BLOCK)] = 0x08;
    assert.throws(() => decodeUpdate('q4', q4, x.length), /outside ±7/);
    assert.throws(() => decodeUpdate('bf16', new Uint8Array(0), 0), /unknown update encoding/);
  });

  it('serialises a quantized update byte for byte: float32 LE scales, then int8 levels or low-nibble-first int4 pairs', () => {
    const scales = Float32Array.of(0.5, 0.25);
    const n = UPDATE_QUANT_BLOCK + 3;
    const levels = Int8Array.from({ length: n }, (_, i) => ((i * 5) % 15) - 7);
    const scaleBytes = Array.from(new Uint8Array(scales.buffer));
    const q8 = encodeUpdate({ bits: 8, length: n, block: UPDATE_QUANT_BLOCK, levels, scales });
    assert.deepEqual(Array.from(q8), [...scaleBytes, ...Array.from(new Uint8Array(levels.buffer))]);
    const q4 = encodeUpdate({ bits: 4, length: n, block: UPDATE_QUANT_BLOCK, levels, scales });
    const nibbles = Array.from({ length: Math.ceil(n / 2) }, (_, j) => (levels[2 * j] & 0xf) | (2 * j + 1 < n ? (levels[2 * j + 1] & 0xf) << 4 : 0));
    assert.deepEqual(Array.from(q4), [...scaleBytes, ...nibbles]);
    assert.deepEqual(Array.from(decodeUpdate('q4', q4, n).update), Array.from(levels, (v, i) => v * scales[i < UPDATE_QUANT_BLOCK ? 0 : 1]));
  });

  it('only serialises: it refuses what the wire cannot carry instead of quantizing it', () => {
    const q = quantize(x, 'q8');
    assert.throws(() => encodeUpdate({ ...q, block: 100 }), /blocks of 256, got 100/);
    assert.throws(() => encodeUpdate({ ...q, bits: 4 }), /level .* is outside ±7/);
    assert.throws(() => encodeUpdate({ ...q, scales: q.scales.subarray(1) }), /3 scales for 1000 values/);
    assert.throws(() => encodeUpdate({ ...q, scales: Float32Array.of(Number.NaN, 1, 1, 1) }), /scale 0 is NaN/);
    assert.throws(() => encodeUpdate([1, 2] as unknown as Float32Array), TypeError);
  });

  it('q8 and q4 decode unbiased: the mean over many encodings converges to the input', () => {
    for (const enc of ['q8', 'q4'] as const) {
      const n = 400;
      const sum = new Float64Array(x.length);
      for (let k = 0; k < n; k++) decodeUpdate(enc, encodeUpdate(quantize(x, enc)), x.length).update.forEach((v, i) => (sum[i] += v / n));
      // per-value error of one draw is < its block's step s; the mean of n draws has std ≤ s/(2√n)
      const d = decodeUpdate(enc, encodeUpdate(quantize(x, enc)), x.length);
      const step = d.slack / Math.sqrt(x.length); // rms step
      let worst = 0;
      sum.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - x[i]))));
      assert.ok(worst < (5 * step) / (2 * Math.sqrt(n)) + 1e-7, `${enc}: worst mean error ${worst}, step ${step}`);
    }
  });
});
