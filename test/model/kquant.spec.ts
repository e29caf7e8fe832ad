import assert from 'node:assert/strict';
import { ggmlDecode, ggmlEncode, nextGaussian, seededRng, type GgmlTypeName } from '../../model/index.js';

/**
 * Hand-packed K-quant blocks checked against the formulas of ggml-common.h / ggml-quants.c,
 * written out here from the documented bit positions (not with the code under test).
 */

/** IEEE binary16 → number for normal numbers, from the definition (1 + m/1024)·2^(e−15). */
function half(bits: number): number {
  const e = (bits >>> 10) & 0x1f;
  assert.ok(e > 0 && e < 31, 'test uses normal halves only');
  return (bits & 0x8000 ? -1 : 1) * (1 + (bits & 0x3ff) / 1024) * 2 ** (e - 15);
}
const f32 = Math.fround; // float32 arithmetic: each double op rounded once is the float32 op

/** OR `width` bits of `value` into bytes[byte] at bit position `bit`. */
function putBits(bytes: Uint8Array, byte: number, bit: number, width: number, value: number): void {
  bytes[byte] |= (value & ((1 << width) - 1)) << bit;
}

/**
 * The 12-byte field of 6-bit scales and mins at `at`: sub-blocks 0–3 use the low 6 bits of byte j
 * (scale) and j+4 (min); sub-blocks 4–7 put their low 4 bits in byte j+4 (scale low nibble, min
 * high nibble) and their top 2 bits in bits 6–7 of byte j−4 (scale) and byte j (min).
 */
function packScalesMins(block: Uint8Array, at: number, sc: number[], mn: number[]): void {
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      putBits(block, at + j, 0, 6, sc[j]);
      putBits(block, at + j + 4, 0, 6, mn[j]);
    } else {
      putBits(block, at + j + 4, 0, 4, sc[j]);
      putBits(block, at + j + 4, 4, 4, mn[j]);
      putBits(block, at + j - 4, 6, 2, sc[j] >> 4);
      putBits(block, at + j, 6, 2, mn[j] >> 4);
    }
  }
}

const setU16 = (b: Uint8Array, at: number, v: number): void => { b[at] = v & 0xff; b[at + 1] = v >> 8; };

function randomInts(n: number, lo: number, hi: number, seed: number): number[] {
  const r = seededRng(seed);
  return Array.from({ length: n }, () => lo + Math.floor(r.nextFloat() * (hi - lo + 1)));
}

function decode(type: GgmlTypeName, block: Uint8Array): Float32Array {
  return ggmlDecode(type, block, 256, new Float32Array(256));
}

describe('model/kquant', () => {
  it('Q4_K: each value is d·sc·q − dmin·m of a hand-packed block (float32, bit for bit)', () => {
    for (const [seed, dBits, mBits] of [[1, 0x2a3b, 0x1f77], [2, 0x3c00, 0x3800], [3, 0x0c01, 0x2e66]]) {
      const sc = seed === 2 ? [63, 63, 63, 63, 63, 63, 63, 63] : randomInts(8, 0, 63, seed);
      const mn = seed === 2 ? [63, 0, 63, 0, 63, 0, 63, 63] : randomInts(8, 0, 63, seed + 10);
      const q = randomInts(256, 0, 15, seed + 20);
      const block = new Uint8Array(144);
      setU16(block, 0, dBits);
      setU16(block, 2, mBits);
      packScalesMins(block, 4, sc, mn);
      // value i: sub-block i>>5; byte 16 + 32·(i>>6) + (i&31); high nibble for the second 32 of each 64
      for (let i = 0; i < 256; i++) putBits(block, 16 + 32 * (i >> 6) + (i & 31), i & 32 ? 4 : 0, 4, q[i]);
      const y = decode('Q4_K', block);
      const d = half(dBits), dmin = half(mBits);
      for (let i = 0; i < 256; i++) {
        const s = i >> 5;
        const want = f32(f32(d * sc[s]) * q[i] - f32(dmin * mn[s]));
        assert.equal(y[i], want, `seed ${seed} value ${i}`);
      }
    }
  });

  it('Q5_K: the 5th bit of value i is bit (i>>5) of qh[i&31]; value = d·sc·q − dmin·m', () => {
    for (const [seed, dBits, mBits] of [[4, 0x2a3b, 0x1f77], [5, 0x3555, 0x3001]]) {
      const sc = randomInts(8, 0, 63, seed);
      const mn = randomInts(8, 0, 63, seed + 10);
      const q = randomInts(256, 0, 31, seed + 20);
      const block = new Uint8Array(176);
      setU16(block, 0, dBits);
      setU16(block, 2, mBits);
      packScalesMins(block, 4, sc, mn);
      for (let i = 0; i < 256; i++) {
        putBits(block, 16 + (i & 31), i >> 5, 1, q[i] >> 4);
        putBits(block, 48 + 32 * (i >> 6) + (i & 31), i & 32 ? 4 : 0, 4, q[i]);
      }
      const y = decode('Q5_K', block);
      const d = half(dBits), dmin = half(mBits);
      for (let i = 0; i < 256; i++) {
        const s = i >> 5;
        assert.equal(y[i], f32(f32(d * sc[s]) * q[i] - f32(dmin * mn[s])), `seed ${seed} value ${i}`);
      }
    }
  });

  it('Q6_K: ql/qh/int8 scales/d-at-the-end; value = d·sc·(q − 32)', () => {
    for (const [seed, dBits] of [[6, 0x2a3b], [7, 0xb3c1]]) {
      const sc = randomInts(16, -128, 127, seed);
      const q = randomInts(256, 0, 63, seed + 20);
      const block = new Uint8Array(210);
      for (let i = 0; i < 256; i++) {
        // half h of 128 values; within it quarter k of 32 values and lane l
        const h = i >> 7, k = (i >> 5) & 3, l = i & 31;
        putBits(block, 64 * h + l + (k & 1 ? 32 : 0), k >= 2 ? 4 : 0, 4, q[i]); // low 4 bits
        putBits(block, 128 + 32 * h + l, 2 * k, 2, q[i] >> 4); // high 2 bits
      }
      sc.forEach((s, j) => { block[192 + j] = s & 0xff; });
      setU16(block, 208, dBits);
      const y = decode('Q6_K', block);
      const d = half(dBits);
      for (let i = 0; i < 256; i++) assert.equal(y[i], f32(f32(d * sc[i >> 4]) * (q[i] - 32)), `seed ${seed} value ${i}`);
    }
  });

  it('decodes a run of blocks from any block boundary (raw sliced there)', () => {
    const r = seededRng(8);
    const x = Float32Array.from({ length: 256 * 5 }, () => nextGaussian(r));
    for (const [t, bytes] of [['Q4_K', 144], ['Q5_K', 176], ['Q6_K', 210]] as const) {
      const raw = ggmlEncode(t, x);
      assert.equal(raw.byteLength, 5 * bytes);
      const full = ggmlDecode(t, raw, x.length, new Float32Array(x.length));
      const part = ggmlDecode(t, raw.subarray(2 * bytes), 512, new Float32Array(600), 50);
      assert.deepEqual(part.subarray(50, 562), full.subarray(512, 1024));
      assert.throws(() => ggmlDecode(t, raw.subarray(0, bytes), 512, new Float32Array(512)), /ggmlDecode: raw has 144|176|210 bytes/);
      assert.throws(() => ggmlDecode(t, raw, 100, new Float32Array(512)), /ggmlDecode: count 100/);
    }
  });

  it('encodes degenerate blocks sensibly: zeros, a constant, all positive, mixed magnitudes', () => {
    for (const t of ['Q4_K', 'Q5_K', 'Q6_K'] as const) {
      assert.deepEqual(ggmlDecode(t, ggmlEncode(t, new Float32Array(256)), 256, new Float32Array(256)), new Float32Array(256));
      const c = new Float32Array(256).fill(-0.75);
      const yc = ggmlDecode(t, ggmlEncode(t, c), 256, new Float32Array(256));
      yc.forEach((v) => assert.ok(Math.abs(v + 0.75) < 0.75 / 30, `${t} constant: ${v}`));
      const pos = Float32Array.from({ length: 256 }, (_, i) => 1 + (i % 37) / 37);
      const yp = ggmlDecode(t, ggmlEncode(t, pos), 256, new Float32Array(256));
      // step of the coarsest format (Q4_K: range 2 over 15 levels) bounds the error
      yp.forEach((v, i) => assert.ok(Math.abs(v - pos[i]) <= 2 / 15, `${t} positive ${i}: ${v} vs ${pos[i]}`));
      const mixed = Float32Array.from({ length: 256 }, (_, i) => Math.sin(i) * (i < 128 ? 1e-3 : 10));
      const ym = ggmlDecode(t, ggmlEncode(t, mixed), 256, new Float32Array(256));
      assert.ok(ym.every(Number.isFinite), `${t} mixed decodes finite`);
      ym.forEach((v, i) => assert.ok(Math.abs(v - mixed[i]) <= 10 / 7, `${t} mixed ${i}`));
    }
  });

  it('fast mode: every value within one step of its sub-block (range/nmax of the format) plus the 6-/8-bit scale-code rounding; the search is never worse on average', () => {
    const r = seededRng(21);
    const x = Float32Array.from({ length: 256 * 16 }, () => 0.02 * nextGaussian(r));
    const sub = { Q4_K: [32, 15], Q5_K: [32, 31], Q6_K: [16, 63] } as const;
    for (const t of ['Q4_K', 'Q5_K', 'Q6_K'] as const) {
      const [n, nmax] = sub[t];
      const yf = ggmlDecode(t, ggmlEncode(t, x, { fast: true }), x.length, new Float32Array(x.length));
      const ys = ggmlDecode(t, ggmlEncode(t, x), x.length, new Float32Array(x.length));
      let sf = 0;
      let ss = 0;
      for (let b = 0; b < x.length / 256; b++) {
        // the largest sub-block range of the super-block sets the 6-bit (8-bit for Q6_K) scale-code resolution
        const ranges: number[] = [];
        for (let s = 256 * b; s < 256 * (b + 1); s += n) {
          const v = Array.from(x.subarray(s, s + n));
          ranges.push(t === 'Q6_K' ? 2 * Math.max(...v.map(Math.abs)) : Math.max(...v) - Math.min(0, ...v));
        }
        const codeStep = Math.max(...ranges) / (t === 'Q6_K' ? 127 : 63);
        for (let i = 256 * b; i < 256 * (b + 1); i++) {
          const step = ranges[Math.floor((i - 256 * b) / n)] / nmax;
          assert.ok(Math.abs(yf[i] - x[i]) <= step + codeStep, `${t} fast value ${i}: |${yf[i]} − ${x[i]}| > ${step} + ${codeStep}`);
          sf += (yf[i] - x[i]) ** 2;
          ss += (ys[i] - x[i]) ** 2;
        }
      }
      assert.ok(ss <= sf, `${t}: searched error ${ss} above fast ${sf}`);
      // degenerate blocks stay exact / finite in fast mode too
      assert.deepEqual(ggmlDecode(t, ggmlEncode(t, new Float32Array(256), { fast: true }), 256, new Float32Array(256)), new Float32Array(256));
    }
  });
});
