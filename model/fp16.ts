/** IEEE 754 half-precision conversion (round to nearest even), for quantization scales. */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → binary16 bits, rounding to nearest even; overflow becomes ±Infinity. */
export function toHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && (half & 1)) ? 1 : 0));
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

let table: Float32Array | undefined;

/** binary16 bits → float32 value. */
export function fromHalf(h: number): number {
  if (!table) {
    table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) {
      const s = i & 0x8000 ? -1 : 1;
      const e = (i >>> 10) & 0x1f;
      const m = i & 0x3ff;
      table[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    }
  }
  return table[h & 0xffff];
}

/** float32 → bfloat16 bits (the upper half of the float32), rounding to nearest even; NaN stays a quiet NaN. */
export function toBf16(value: number): number {
  f32[0] = value;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 64) & 0xffff;
  return ((b + (0x7fff + ((b >>> 16) & 1))) >>> 16) & 0xffff;
}

/** bfloat16 bits → float32 value (the bits become the upper half of a float32). */
export function fromBf16(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}
