import assert from 'node:assert/strict';
import {
  GGML_TYPES, ggmlDecode, ggmlEncode, ggmlTensorBytes, ggmlType, ggmlTypeByName, nextGaussian, seededRng, type GgmlTypeName,
} from '../../model/index.js';

function gaussian(n: number, seed: number): Float32Array {
  const r = seededRng(seed);
  return Float32Array.from({ length: n }, () => nextGaussian(r));
}
const decodeAll = (t: GgmlTypeName, raw: Uint8Array, n: number): Float32Array => ggmlDecode(t, raw, n, new Float32Array(n));
function relRmse(x: Float32Array, y: Float32Array): number {
  let e = 0, p = 0;
  for (let i = 0; i < x.length; i++) { e += (y[i] - x[i]) ** 2; p += x[i] ** 2; }
  return Math.sqrt(e / p);
}

/**
 * A naive block quantizer written here as the yardstick: per sub-block of `n`, a uniform grid of
 * `levels` codes over [min(0, min x), max x] (asymmetric) or ±max|x| (symmetric), with the scale
 * kept in float64. ggml's formats spend bits on quantized scales; a decent quantizer still matches it.
 */
function naiveRelRmse(x: Float32Array, n: number, levels: number, symmetric: boolean): number {
  const y = new Float32Array(x.length);
  for (let s = 0; s < x.length; s += n) {
    const v = x.subarray(s, s + n);
    const lo = symmetric ? -Math.max(...v.map(Math.abs)) : Math.min(0, ...v);
    const hi = symmetric ? -lo : Math.max(...v);
    const step = (hi - lo) / (levels - 1);
    v.forEach((xi, i) => { y[s + i] = step ? lo + step * Math.round((xi - lo) / step) : xi; });
  }
  return relRmse(x, y);
}

describe('model/ggml-types', () => {
  it("has ggml's ids and block sizes (Q4_K 144 B / 256, Q5_K 176, Q6_K 210, Q8_0 34 / 32, Q4_0 18 / 32)", () => {
    const want: [GgmlTypeName, number, number, number][] = [
      ['F32', 0, 1, 4], ['F16', 1, 1, 2], ['Q4_0', 2, 32, 18], ['Q8_0', 8, 32, 34],
      ['Q4_K', 12, 256, 144], ['Q5_K', 13, 256, 176], ['Q6_K', 14, 256, 210], ['BF16', 30, 1, 2],
    ];
    assert.equal(Object.keys(GGML_TYPES).length, want.length);
    for (const [name, id, values, bytes] of want) {
      const t = GGML_TYPES[name];
      assert.deepEqual([t.name, t.id, t.blockValues, t.blockBytes], [name, id, values, bytes]);
      assert.equal(ggmlType(id), t);
      assert.equal(ggmlTypeByName(name), t);
      assert.equal(ggmlTensorBytes(name, values * 3), bytes * 3);
      assert.equal(ggmlTensorBytes(id, 0), 0);
    }
    assert.equal(ggmlType(3), undefined); // Q4_1: not supported
    assert.equal(ggmlTypeByName('toString'), undefined);
    assert.throws(() => ggmlTensorBytes('Q4_K', 100), /ggmlTensorBytes: count 100 is not a whole number of Q4_K blocks of 256/);
    assert.throws(() => ggmlTensorBytes('Q8_0', -32), RangeError);
    assert.throws(() => ggmlTensorBytes(3, 32), /ggmlTensorBytes: type 3 is not a supported GGML type/);
    assert.throws(() => ggmlEncode('Q6_K', new Float32Array(255)), /ggmlEncode: x has 255 values/);
    assert.throws(() => ggmlDecode('F32', new Uint8Array(8), 2, new Float32Array(1)), /ggmlDecode: out has 1 values/);
  });

  it('decodes F32, F16 and BF16 (the upper half of a float32) bit for bit', () => {
    const x = Float32Array.from([1.5, -2.25, 3.0e-5, 65504, -0, 1 / 3]);
    const bits = new Uint32Array(x.buffer);
    const f32 = new Uint8Array(x.buffer.slice(0));
    assert.deepEqual(decodeAll('F32', f32, 6), x);
    const f16 = Uint8Array.from([0x00, 0x3e, 0x00, 0xc0, 0x00, 0x7c, 0x01, 0x00]); // 1.5, −2, +Inf, 2^-24
    assert.deepEqual(decodeAll('F16', f16, 4), Float32Array.from([1.5, -2, Infinity, 2 ** -24]));
    const bf = new Uint8Array(12);
    bits.forEach((b, i) => { bf[2 * i] = (b >>> 16) & 0xff; bf[2 * i + 1] = b >>> 24; });
    const want = new Float32Array(new Uint32Array(bits.map((b) => b & 0xffff0000)).buffer);
    assert.deepEqual(decodeAll('BF16', bf, 6), want);
  });

  it('encodes BF16 by round to nearest even on the dropped 16 bits (NaN stays NaN)', () => {
    const fromBits = (b: number): number => new Float32Array(Uint32Array.of(b).buffer)[0];
    const bf = (b: number): number => { const r = ggmlEncode('BF16', Float32Array.of(fromBits(b))); return r[0] | (r[1] << 8); };
    assert.equal(bf(0x3f808000), 0x3f80); // tie, even stays
    assert.equal(bf(0x3f818000), 0x3f82); // tie, odd rounds up
    assert.equal(bf(0x3f808001), 0x3f81); // above half
    assert.equal(bf(0xbf807fff), 0xbf80); // below half
    assert.ok(Number.isNaN(decodeAll('BF16', ggmlEncode('BF16', Float32Array.of(NaN)), 1)[0]));
    const x = gaussian(64, 1);
    assert.deepEqual(ggmlEncode('F32', x), new Uint8Array(x.buffer));
  });

  it('decodes hand-packed Q8_0 (d·q) and Q4_0 (d·(q − 8), element j+16 in the high nibble) blocks', () => {
    const q8 = new Uint8Array(34);
    q8[0] = 0x00; q8[1] = 0x38; // d = 0.5
    for (let j = 0; j < 32; j++) q8[2 + j] = (j * 7 - 100) & 0xff;
    decodeAll('Q8_0', q8, 32).forEach((v, j) => assert.equal(v, 0.5 * (j * 7 - 100)));
    const q4 = new Uint8Array(18);
    q4[0] = 0x00; q4[1] = 0xb4; // d = −0.25
    for (let j = 0; j < 16; j++) q4[2 + j] = j | ((15 - j) << 4);
    decodeAll('Q4_0', q4, 32).forEach((v, j) => assert.equal(v, -0.25 * ((j < 16 ? j : 31 - j) - 8)));
  });

  it('Q8_0 and Q4_0 quantize as ggml\'s reference: d = max|x|/127, q = round(x/d); d = max/−8', () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => (i - 10) / 4); // max 5.25 at i = 31
    const r8 = ggmlEncode('Q8_0', x);
    const d8 = Math.fround(5.25 / 127);
    for (let j = 0; j < 32; j++) assert.equal((r8[2 + j] << 24) >> 24, Math.round(Math.abs(x[j]) / d8) * Math.sign(x[j]), `q8 ${j}`);
    const r4 = ggmlEncode('Q4_0', x);
    const d4 = 5.25 / -8;
    const y4 = decodeAll('Q4_0', r4, 32);
    assert.equal(y4[31], 5.25); // the extreme maps to code 0: (0 − 8)·d
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(y4[j] - x[j]) <= Math.abs(d4) / 2 + 1e-6, `q4 ${j}`);
  });

  it('round trips gaussian data within the naive block quantizer\'s error and above the Shannon bound', () => {
    const n = 256 * 48;
    const x = gaussian(n, 7);
    // [type, bytes/param, naive yardstick: sub-block, levels, symmetric, allowed ratio to it]
    const cases: [GgmlTypeName, number, number, number, boolean, number][] = [
      ['Q8_0', 34 / 32, 32, 255, true, 1.02], // ggml's own rule: only the f16 scale differs
      ['Q4_0', 18 / 32, 32, 16, true, 1.05], // 16 codes over [−amax, amax·7/8]
      ['Q4_K', 144 / 256, 32, 16, false, 1.0],
      ['Q5_K', 176 / 256, 32, 32, false, 1.0],
      ['Q6_K', 210 / 256, 16, 64, true, 1.0],
    ];
    for (const [t, bpp, sub, levels, sym, ratio] of cases) {
      const raw = ggmlEncode(t, x);
      assert.equal(raw.byteLength / n, bpp, `${t} bytes/param`);
      const e = relRmse(x, decodeAll(t, raw, n));
      const naive = naiveRelRmse(x, sub, levels, sym);
      assert.ok(e <= naive * ratio, `${t}: rel. RMSE ${(100 * e).toFixed(3)}% vs naive ${(100 * naive).toFixed(3)}%`);
      // rate–distortion of a unit gaussian at R = 8·bpp bits: RMSE ≥ 2^−R; no code beats it
      assert.ok(e > 2 ** (-8 * bpp), `${t}: ${e} below the Shannon bound`);
    }
  });
});
