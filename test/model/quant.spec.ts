import assert from 'node:assert/strict';
import {
  BLOCK, dequantize, dequantizeInto, fromHalf, ggmlDecode, ggmlEncode, ggmlTensorBytes, nativeQuantized, quantizeQ4, quantizeQ8,
  quantizedBytes, seededRng, nextGaussian, toHalf, type GgmlTypeName,
} from '../../model/index.js';

function gaussian(n: number, seed: number, scale = 1): Float32Array {
  const r = seededRng(seed);
  return Float32Array.from({ length: n }, () => nextGaussian(r) * scale);
}

describe('model/quant', () => {
  it('converts float16 like IEEE 754 (known bit patterns, round to nearest even)', () => {
    assert.equal(toHalf(1), 0x3c00);
    assert.equal(toHalf(-2), 0xc000);
    assert.equal(toHalf(65504), 0x7bff);
    assert.equal(toHalf(1e6), 0x7c00);
    assert.equal(toHalf(2 ** -24), 0x0001);
    assert.equal(toHalf(1 + 2 ** -11), 0x3c00); // tie to even
    assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(fromHalf(0x3555), 0.333251953125);
    for (const v of [0.1, -3.75, 1234.5, 6e-5]) assert.ok(Math.abs(fromHalf(toHalf(v)) - v) <= Math.abs(v) * 2 ** -11);
  });

  it('Q8_0 errors stay within half a step per value and hold 1.0625 bytes/value', () => {
    const x = gaussian(32 * 100 + 7, 1, 0.05);
    const q = quantizeQ8(x);
    const y = dequantize(q);
    for (let i = 0; i < x.length; i++) {
      const d = fromHalf(q.scales[Math.floor(i / q.block)]);
      assert.ok(Math.abs(x[i] - y[i]) <= d / 2 + 1e-7 + Math.abs(x[i]) * 2e-3, `value ${i}`);
    }
    assert.equal(quantizedBytes(quantizeQ8(new Float32Array(3200))), 3200 + 200);
  });

  it('Q4_0 stores nibbles as GGUF does and keeps the error within a step', () => {
    const x = gaussian(64, 2);
    const q = quantizeQ4(x);
    const y = dequantize(q);
    for (let i = 0; i < x.length; i++) {
      const d = Math.abs(fromHalf(q.scales[Math.floor(i / q.block)]));
      // half a step, or one step for the clipped end of the asymmetric range [−8d, 7d]
      assert.ok(Math.abs(x[i] - y[i]) <= d + 1e-6, `value ${i}`);
    }
    // the value of largest magnitude maps to nibble 0 (−8 · d) exactly, up to fp16 rounding
    const big = Float32Array.from({ length: 32 }, (_, i) => (i === 17 ? -4 : i / 100));
    const qb = quantizeQ4(big);
    assert.equal(qb.data[1] >> 4, 0);
    assert.equal(quantizedBytes(quantizeQ4(new Float32Array(3200))), 1600 + 200);
  });

  it('dequantizes any sub-range, including blocks cut by row boundaries', () => {
    const x = gaussian(172 * 3, 3);
    for (const q of [quantizeQ8(x), quantizeQ4(x)]) {
      const all = dequantize(q);
      const part = dequantizeInto(q, new Float32Array(200), 150, 330, 10);
      assert.deepEqual(part.subarray(10, 190), all.subarray(150, 330));
      assert.throws(() => dequantizeInto(q, new Float32Array(10), 0, q.length + 1), RangeError);
    }
  });

  it('holds GGUF Q8_0/Q4_0/Q4_K/Q5_K/Q6_K bytes natively: same values as ggml decoding, same bytes, any sub-range', () => {
    const n = 256 * 6;
    const x = gaussian(n, 4);
    const rng = seededRng(5);
    const kinds: [GgmlTypeName, string, number][] = [['Q8_0', 'q8_0', 32], ['Q4_0', 'q4_0', 32], ['Q4_K', 'q4_k', 256], ['Q5_K', 'q5_k', 256], ['Q6_K', 'q6_k', 256]];
    for (const [t, kind, block] of kinds) {
      const raw = ggmlEncode(t, x);
      const q = nativeQuantized(t, raw, n);
      assert.deepEqual([q.kind, q.length, q.block], [kind, n, block]);
      assert.equal(quantizedBytes(q), ggmlTensorBytes(t, n));
      const full = ggmlDecode(t, raw, n, new Float32Array(n));
      assert.deepEqual(dequantize(q), full);
      raw.fill(0); // the array holds its own copy
      assert.deepEqual(dequantize(q), full);
      for (let k = 0; k < 40; k++) {
        const a = Math.floor(rng.nextFloat() * n);
        const b = a + Math.floor(rng.nextFloat() * (n - a + 1));
        const off = Math.floor(rng.nextFloat() * 20);
        const out = new Float32Array(off + (b - a) + 5).fill(7);
        dequantizeInto(q, out, a, b, off);
        assert.deepEqual(out.subarray(off, off + b - a), full.subarray(a, b), `${t} [${a}, ${b})`);
        assert.ok(out.subarray(0, off).every((v) => v === 7) && out.subarray(off + b - a).every((v) => v === 7), `${t} wrote outside [${a}, ${b})`);
      }
      assert.throws(() => dequantizeInto(q, new Float32Array(n), 0, n + 1), RangeError);
    }
    assert.throws(() => nativeQuantized('F16', new Uint8Array(64), 32), /nativeQuantized: type F16 is not a quantized type/);
    assert.throws(() => nativeQuantized('Q6_K', new Uint8Array(210), 128), /nativeQuantized: count 128/);
    assert.throws(() => nativeQuantized(14, new Uint8Array(209), 256), /nativeQuantized: raw has 209 bytes/);
  });
});
