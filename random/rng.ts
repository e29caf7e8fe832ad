/**
 * Injected randomness. Everything random in fedtune (LoRA init, dropout masks, batch sampling,
 * token sampling, later DP noise and masks) draws from an {@link Rng}: crypto-strength in
 * production ({@link cryptoRng}), seeded in tests and reproducible runs ({@link seededRng}).
 */
import { randomBytes } from 'node:crypto';

/** A source of uniform random numbers. */
export interface Rng {
  /** Uniform 32-bit unsigned integer. */
  nextU32(): number;
  /** Uniform float in [0, 1) with 53 bits of precision. */
  nextFloat(): number;
}

/** Standard normal sample (Box–Muller) from any {@link Rng}. */
export function nextGaussian(rng: Rng): number {
  let u = 0;
  while (u === 0) u = rng.nextFloat();
  const v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function floatFromU32Pair(hi: number, lo: number): number {
  return ((hi >>> 5) * 67108864 + (lo >>> 6)) / 9007199254740992;
}

/** xoshiro128** state, seeded through splitmix32 so any integer seed gives a good state. */
class Xoshiro128 implements Rng {
  private s = new Uint32Array(4);
  constructor(seed: number) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1;
  }
  nextU32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }
  nextFloat(): number {
    return floatFromU32Pair(this.nextU32(), this.nextU32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * A deterministic generator (xoshiro128**) for tests and reproducible runs.
 * @param seed any safe integer; equal seeds give equal streams.
 */
export function seededRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new TypeError(`seededRng: seed must be a safe integer, got ${seed}`);
  // fold the high bits in so seeds above 2^32 still differ
  return new Xoshiro128((seed ^ Math.floor(seed / 4294967296)) >>> 0);
}

/** A cryptographically secure generator backed by node:crypto, buffered 4 KiB at a time. */
export function cryptoRng(): Rng {
  let buf = new Uint32Array(0);
  let i = 0;
  const nextU32 = (): number => {
    if (i >= buf.length) {
      const b = randomBytes(4096);
      buf = new Uint32Array(b.buffer, b.byteOffset, 1024);
      i = 0;
    }
    return buf[i++];
  };
  return { nextU32, nextFloat: () => floatFromU32Pair(nextU32(), nextU32()) };
}

/** Derive an independent child seed from a seed and a label (FNV-1a over both). */
export function deriveSeed(seed: number, label: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  h = Math.imul(h, 0x01000193) >>> 0;
  h ^= Math.floor(seed / 4294967296) >>> 0;
  for (let k = 0; k < label.length; k++) {
    h ^= label.charCodeAt(k);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
