/**
 * Poly1305 verification (RFC 8439 §2.5, NaCl's crypto_onetimeauth_verify) with its block loop in
 * a small WebAssembly module assembled here: five 26-bit limbs with 64-bit products (the layout
 * of poly1305-donna-32), which JS cannot do exactly (26 × 28-bit products overflow a double's
 * 53 bits; tweetnacl therefore uses ten 13-bit limbs, at ~200 MB/s). Key clamping, the final
 * reduction mod 2¹³⁰ − 5, the pad and the constant-time tag comparison are in JS. Without
 * WebAssembly, tweetnacl's verify serves.
 */
import nacl from 'tweetnacl';

/** Unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}
/** Signed LEB128 (for i64.const of small non-negative values). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n = Math.floor(n / 128);
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];

/** Byte offsets in the module's memory: h (5 × i64), r (5 × i64), then the message. */
export const POLY_H = 0;
const POLY_R = 40;
/** Where the message goes. */
export const POLY_MSG = 128;

/**
 * blocks(p: i32, nblocks: i32, hibit: i64): absorb nblocks 16-byte blocks at byte p into h,
 * with 2¹²⁸·hibit/2²⁴ added to each (hibit = 1 << 24 for full blocks, 0 for a padded last one).
 */
function moduleBytes(): Uint8Array<ArrayBuffer> {
  const [localGet, localSet, localTee, i32const, i64const, i32add, i32sub, i32eqz, brIf, block, loop, end] = [0x20, 0x21, 0x22, 0x41, 0x42, 0x6a, 0x6b, 0x45, 0x0d, 0x02, 0x03, 0x0b];
  const [i64add, i64mul, i64and, i64or, i64shl, i64shrU, i64load, i64store, i64load32U] = [0x7c, 0x7e, 0x83, 0x84, 0x86, 0x88, 0x29, 0x37, 0x35];
  // params: 0 p, 1 n, 2 hibit; i64 locals: 3..7 h0..h4, 8..12 r0..r4, 13..16 s1..s4, 17..20 t0..t3, 21..25 d0..d4, 26 c
  const P = 0, N = 1, HIBIT = 2;
  const H = (i: number): number => 3 + i;
  const R = (i: number): number => 8 + i;
  const S = (i: number): number => 12 + i; // s1..s4 at 13..16
  const T = (i: number): number => 17 + i;
  const D = (i: number): number => 21 + i;
  const C = 26;
  const M26 = [i64const, ...sleb(0x3ffffff)];
  const get = (l: number): number[] => [localGet, l];
  const set = (l: number): number[] => [localSet, l];
  const loadI64 = (off: number): number[] => [i32const, 0, i64load, 3, ...leb(off)];
  const code: number[] = [];
  // load h, r; s_i = 5·r_i
  for (let i = 0; i < 5; i++) code.push(...loadI64(POLY_H + 8 * i), ...set(H(i)));
  for (let i = 0; i < 5; i++) code.push(...loadI64(POLY_R + 8 * i), ...set(R(i)));
  for (let i = 1; i < 5; i++) code.push(...get(R(i)), i64const, 5, i64mul, ...set(S(i)));
  const rr = (j: number): number => R(j);
  const ss = (j: number): number => S(j);
  // d_k = Σ_i h_i · (i ≤ k ? r_{k−i} : s_{5+k−i})
  const d = (k: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < 5; i++) {
      out.push(...get(H(i)), ...get(i <= k ? rr(k - i) : ss(5 + k - i)), i64mul);
      if (i > 0) out.push(i64add);
    }
    return [...out, ...set(D(k))];
  };
  const body: number[] = [
    // t0..t3: the block's four little-endian words
    ...[0, 1, 2, 3].flatMap((i) => [...get(P), i64load32U, 2, ...leb(4 * i), ...set(T(i))]),
    // h += block (26-bit limbs), with the high bit
    ...get(H(0)), ...get(T(0)), ...M26, i64and, i64add, ...set(H(0)),
    ...get(H(1)), ...get(T(0)), i64const, 26, i64shrU, ...get(T(1)), i64const, 6, i64shl, i64or, ...M26, i64and, i64add, ...set(H(1)),
    ...get(H(2)), ...get(T(1)), i64const, 20, i64shrU, ...get(T(2)), i64const, 12, i64shl, i64or, ...M26, i64and, i64add, ...set(H(2)),
    ...get(H(3)), ...get(T(2)), i64const, 14, i64shrU, ...get(T(3)), i64const, 18, i64shl, i64or, ...M26, i64and, i64add, ...set(H(3)),
    ...get(H(4)), ...get(T(3)), i64const, 8, i64shrU, ...get(HIBIT), i64or, i64add, ...set(H(4)),
    // h *= r (mod 2¹³⁰ − 5, partially reduced)
    ...d(0), ...d(1), ...d(2), ...d(3), ...d(4),
    ...get(D(0)), i64const, 26, i64shrU, ...set(C), ...get(D(0)), ...M26, i64and, ...set(H(0)),
    ...[1, 2, 3, 4].flatMap((k) => [...get(D(k)), ...get(C), i64add, localTee, D(k), i64const, 26, i64shrU, ...set(C), ...get(D(k)), ...M26, i64and, ...set(H(k))]),
    ...get(H(0)), ...get(C), i64const, 5, i64mul, i64add, localTee, H(0), i64const, 26, i64shrU, ...set(C),
    ...get(H(0)), ...M26, i64and, ...set(H(0)),
    ...get(H(1)), ...get(C), i64add, ...set(H(1)),
    // next block
    ...get(P), i32const, 16, i32add, ...set(P),
    ...get(N), i32const, 1, i32sub, localTee, N, brIf, 0,
  ];
  code.push(block, 0x40, ...get(N), i32eqz, brIf, 0, loop, 0x40, ...body, end, end);
  for (let i = 0; i < 5; i++) code.push(i32const, 0, ...get(H(i)), i64store, 3, ...leb(POLY_H + 8 * i));
  const fn = [...leb(1), ...leb(24), 0x7e, ...code, end];
  const str = (s: string): number[] => [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 3, 0x7f, 0x7f, 0x7e, 0]])),
    ...section(3, vec([[0]])),
    ...section(5, vec([[0x00, 1]])),
    ...section(7, vec([[...str('mem'), 0x02, 0], [...str('blocks'), 0x00, 0]])),
    ...section(10, [...leb(1), ...leb(fn.length), ...fn]),
  ]);
}

interface Instance {
  readonly memory: WebAssembly.Memory;
  readonly blocks: (p: number, n: number, hibit: bigint) => void;
}

let instance: Instance | null | undefined;
function poly(): Instance | null {
  if (instance === undefined) {
    try {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()), {});
      instance = { memory: inst.exports.mem as WebAssembly.Memory, blocks: inst.exports.blocks as Instance['blocks'] };
    } catch {
      instance = null;
    }
  }
  return instance;
}

const le32 = (b: Uint8Array, i: number): number => (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
const HIBIT_FULL = BigInt(1 << 24);
const HIBIT_NONE = BigInt(0);

/**
 * True if `tag` (16 bytes at tagAt) is the Poly1305 MAC of msg[at, at + n) under the one-time
 * key `key` (32 bytes: r ‖ s). The comparison takes the same time wherever the tags differ.
 */
export function poly1305Verify(tag: Uint8Array, tagAt: number, msg: Uint8Array, at: number, n: number, key: Uint8Array): boolean {
  const w = poly();
  if (!w) return (nacl as unknown as { lowlevel: { crypto_onetimeauth_verify(h: Uint8Array, hp: number, m: Uint8Array, mp: number, n: number, k: Uint8Array): number } }).lowlevel.crypto_onetimeauth_verify(tag, tagAt, msg, at, n, key) === 0;
  const need = POLY_MSG + 16 * Math.ceil(n / 16) + 16;
  if (w.memory.buffer.byteLength < need) w.memory.grow(Math.ceil((need - w.memory.buffer.byteLength) / 65536));
  const mem = new Uint8Array(w.memory.buffer);
  const words = new Uint32Array(w.memory.buffer, 0, POLY_MSG / 4);
  // r, clamped, as 26-bit limbs; h = 0
  const t0 = le32(key, 0) & 0x0fffffff;
  const t1 = le32(key, 4) & 0x0ffffffc;
  const t2 = le32(key, 8) & 0x0ffffffc;
  const t3 = le32(key, 12) & 0x0ffffffc;
  const r = [t0 & 0x3ffffff, ((t0 >>> 26) | (t1 << 6)) & 0x3ffffff, ((t1 >>> 20) | (t2 << 12)) & 0x3ffffff, ((t2 >>> 14) | (t3 << 18)) & 0x3ffffff, t3 >>> 8];
  words.fill(0);
  for (let i = 0; i < 5; i++) words[(POLY_R >> 2) + 2 * i] = r[i];
  mem.set(msg.subarray(at, at + n), POLY_MSG);
  const full = n >> 4;
  if (full > 0) w.blocks(POLY_MSG, full, HIBIT_FULL);
  const rest = n & 15;
  if (rest > 0) {
    const p = POLY_MSG + 16 * full;
    mem[p + rest] = 1;
    mem.fill(0, p + rest + 1, p + 16);
    w.blocks(p, 1, HIBIT_NONE);
  }
  // h as limbs (each < 2²⁷ after the partial reduction): carry fully, then reduce mod p = 2¹³⁰ − 5
  let h0 = words[0], h1 = words[2], h2 = words[4], h3 = words[6], h4 = words[8];
  words.fill(0, 0, POLY_R / 4 + 10);
  let c: number;
  c = h1 >>> 26; h1 &= 0x3ffffff; h2 += c;
  c = h2 >>> 26; h2 &= 0x3ffffff; h3 += c;
  c = h3 >>> 26; h3 &= 0x3ffffff; h4 += c;
  c = h4 >>> 26; h4 &= 0x3ffffff; h0 += c * 5;
  c = h0 >>> 26; h0 &= 0x3ffffff; h1 += c;
  // g = h + 5 − 2¹³⁰: if it does not go negative, h ≥ p and h − p = g is the reduced value
  let g0 = h0 + 5; c = g0 >>> 26; g0 &= 0x3ffffff;
  let g1 = h1 + c; c = g1 >>> 26; g1 &= 0x3ffffff;
  let g2 = h2 + c; c = g2 >>> 26; g2 &= 0x3ffffff;
  let g3 = h3 + c; c = g3 >>> 26; g3 &= 0x3ffffff;
  const g4 = (h4 + c - (1 << 26)) | 0;
  const useG = ((g4 >>> 31) ^ 1) * -1; // all ones if g4 ≥ 0, else 0
  h0 = (h0 & ~useG) | (g0 & useG);
  h1 = (h1 & ~useG) | (g1 & useG);
  h2 = (h2 & ~useG) | (g2 & useG);
  h3 = (h3 & ~useG) | (g3 & useG);
  h4 = (h4 & ~useG) | (g4 & useG & 0x3ffffff);
  // h mod 2¹²⁸ as four words, plus s (the key's second half), mod 2¹²⁸
  const w0 = (h0 | (h1 << 26)) >>> 0;
  const w1 = ((h1 >>> 6) | (h2 << 20)) >>> 0;
  const w2 = ((h2 >>> 12) | (h3 << 14)) >>> 0;
  const w3 = ((h3 >>> 18) | (h4 << 8)) >>> 0;
  let f = w0 + le32(key, 16);
  const o0 = f >>> 0;
  f = w1 + le32(key, 20) + Math.floor(f / 2 ** 32);
  const o1 = f >>> 0;
  f = w2 + le32(key, 24) + Math.floor(f / 2 ** 32);
  const o2 = f >>> 0;
  f = w3 + le32(key, 28) + Math.floor(f / 2 ** 32);
  const o3 = f >>> 0;
  const diff = (o0 ^ le32(tag, tagAt)) | (o1 ^ le32(tag, tagAt + 4)) | (o2 ^ le32(tag, tagAt + 8)) | (o3 ^ le32(tag, tagAt + 12));
  return diff === 0;
}
