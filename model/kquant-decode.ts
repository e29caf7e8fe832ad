/**
 * Dequantization of ggml's K-quant super-blocks (256 values each), bit for bit as ggml's
 * dequantize_row_q4_K / _q5_K / _q6_K compute them in float32.
 *
 * Layouts (little-endian, no padding):
 * - Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32,
 *   qs[128] 4-bit quants. Value = d·sc·q − dmin·m.
 * - Q5_K, 176 bytes: as Q4_K with qh[32] (one high bit per value) between the scales and qs.
 * - Q6_K, 210 bytes: ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (sub-blocks of 16),
 *   f16 d at the end. Value = d·sc·(q − 32).
 *
 * Packed scales (Q4_K/Q5_K): sub-blocks 0–3 keep scale and min in the low 6 bits of bytes j and
 * j+4; sub-blocks 4–7 keep their low 4 bits in the nibbles of byte j+4 and their top 2 bits in
 * the top 2 bits of bytes j−4 (scale) and j (min).
 *
 * Float32 exactness: d·sc, dmin·m and d·sc·q (Q4_K/Q5_K) need at most 22 significant bits, so
 * they are exact and only the final subtraction rounds; Q6_K rounds (d·sc)·q once. Doubles
 * rounded with Math.fround (or a Float32Array store) give the same bits as float32 arithmetic.
 */
import { fromHalf } from './fp16.js';

/** Values per K-quant super-block. */
export const QK_K = 256;
/** Bytes of a Q4_K super-block. */
export const Q4_K_BYTES = 2 + 2 + 12 + QK_K / 2;
/** Bytes of a Q5_K super-block. */
export const Q5_K_BYTES = 2 + 2 + 12 + QK_K / 8 + QK_K / 2;
/** Bytes of a Q6_K super-block. */
export const Q6_K_BYTES = QK_K / 2 + QK_K / 4 + QK_K / 16 + 2;

const f16At = (raw: Uint8Array, p: number): number => fromHalf(raw[p] | (raw[p + 1] << 8));

/**
 * The 6-bit scale and min of sub-block j (0–7) from the 12 packed bytes at `raw[p]`, as ggml's
 * get_scale_min_k4: written into `sm[0]` (scale) and `sm[1]` (min).
 */
export function scaleMinK4(raw: Uint8Array, p: number, j: number, sm: Uint8Array): void {
  if (j < 4) {
    sm[0] = raw[p + j] & 63;
    sm[1] = raw[p + j + 4] & 63;
  } else {
    sm[0] = (raw[p + j + 4] & 0x0f) | ((raw[p + j - 4] >>> 6) << 4);
    sm[1] = (raw[p + j + 4] >>> 4) | ((raw[p + j] >>> 6) << 4);
  }
}

const sm = new Uint8Array(2);

/** Decode `nb` Q4_K super-blocks starting at byte `p` of `raw` into `out` from `o`. */
export function decodeQ4K(raw: Uint8Array, p: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, p += Q4_K_BYTES) {
    const d = f16At(raw, p);
    const dmin = f16At(raw, p + 2);
    const qs = p + 16;
    for (let s = 0; s < 8; s++) {
      scaleMinK4(raw, p + 4, s, sm);
      const d1 = Math.fround(d * sm[0]);
      const m1 = Math.fround(dmin * sm[1]);
      const q = qs + 32 * (s >>> 1);
      const shift = (s & 1) * 4;
      for (let l = 0; l < 32; l++) out[o++] = d1 * ((raw[q + l] >>> shift) & 0x0f) - m1;
    }
  }
}

/** Decode `nb` Q5_K super-blocks starting at byte `p` of `raw` into `out` from `o`. */
export function decodeQ5K(raw: Uint8Array, p: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, p += Q5_K_BYTES) {
    const d = f16At(raw, p);
    const dmin = f16At(raw, p + 2);
    const qh = p + 16;
    const qs = p + 48;
    for (let s = 0; s < 8; s++) {
      scaleMinK4(raw, p + 4, s, sm);
      const d1 = Math.fround(d * sm[0]);
      const m1 = Math.fround(dmin * sm[1]);
      const q = qs + 32 * (s >>> 1);
      const shift = (s & 1) * 4;
      const hbit = 1 << s;
      for (let l = 0; l < 32; l++) {
        const v = ((raw[q + l] >>> shift) & 0x0f) + (raw[qh + l] & hbit ? 16 : 0);
        out[o++] = d1 * v - m1;
      }
    }
  }
}

/** Decode `nb` Q6_K super-blocks starting at byte `p` of `raw` into `out` from `o`. */
export function decodeQ6K(raw: Uint8Array, p: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, p += Q6_K_BYTES) {
    const d = f16At(raw, p + 208);
    for (let half = 0; half < 2; half++) {
      const ql = p + 64 * half;
      const qh = p + 128 + 32 * half;
      const sc = p + 192 + 8 * half;
      const y = o + 128 * half;
      for (let l = 0; l < 32; l++) {
        const h = raw[qh + l];
        const is = l >>> 4;
        const q1 = ((raw[ql + l] & 0x0f) | ((h & 3) << 4)) - 32;
        const q2 = ((raw[ql + l + 32] & 0x0f) | (((h >>> 2) & 3) << 4)) - 32;
        const q3 = ((raw[ql + l] >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
        const q4 = ((raw[ql + l + 32] >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
        out[y + l] = Math.fround(d * ((raw[sc + is] << 24) >> 24)) * q1;
        out[y + l + 32] = Math.fround(d * ((raw[sc + is + 2] << 24) >> 24)) * q2;
        out[y + l + 64] = Math.fround(d * ((raw[sc + is + 4] << 24) >> 24)) * q3;
        out[y + l + 96] = Math.fround(d * ((raw[sc + is + 6] << 24) >> 24)) * q4;
      }
    }
    o += QK_K;
  }
}
