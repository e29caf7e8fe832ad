/**
 * Data shards of a simulated population as pointers, never copied text: device i holds a few
 * segments (domain, character offset, length) of the partner domains' training text, stored for
 * the whole population in flat typed arrays (CSR layout: ~10 bytes per segment).
 *
 * - `natural`: device i holds one contiguous slice of domain i mod D; the slices of a domain are
 *   disjoint and laid end to end (scaled down when a domain's text is too short for them all).
 * - `dirichlet(α)`: device i's mix over the D domains is p ~ Dirichlet(α, …, α) (small α: mostly
 *   one domain; large α: every domain evenly); it holds ⌊p_d · size⌋ characters of domain d
 *   (segments under `minSegmentChars` are dropped and the rest renormalized). A domain's
 *   segments are disjoint until its text is used up, then they wrap around (overlap).
 *
 * Sizes are unbalanced: lognormal with the given mean characters and log-σ (Kairouz et al. 2021
 * note real federated datasets are heavy-tailed in examples per device).
 */
import { nextGaussian, seededRng, type Rng } from '../../random/rng.js';

/** How the population's text is split. */
export type ShardScheme = { readonly kind: 'natural' } | { readonly kind: 'dirichlet'; readonly alpha: number };

/** Options of {@link buildShards}. */
export interface ShardOptions {
  /** Characters of training text per domain (in the domains' order). */
  readonly domainLengths: readonly number[];
  readonly devices: number;
  readonly scheme: ShardScheme;
  /** Mean characters per device. Default 2,000. */
  readonly meanChars?: number;
  /** σ of log(size). Default 1 (the largest devices hold ~10× the median). */
  readonly sizeSigma?: number;
  /** No device holds less; no Dirichlet segment is shorter. Default 200. */
  readonly minSegmentChars?: number;
  readonly seed?: number;
}

/** Parse "natural" or "dirichlet:α" (CLI flags). */
export function parseShardScheme(s: string): ShardScheme {
  if (s === 'natural') return { kind: 'natural' };
  const m = /^dirichlet:([0-9.eE+-]+)$/.exec(s);
  const alpha = m ? Number(m[1]) : Number.NaN;
  if (!(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`parseShardScheme: expected "natural" or "dirichlet:α" with α > 0, got ${JSON.stringify(s)}`);
  return { kind: 'dirichlet', alpha };
}

/** A Gamma(shape, 1) draw (Marsaglia & Tsang 2000; shape < 1 by the boost Gamma(a+1)·U^(1/a)). */
export function gammaDraw(rng: Rng, shape: number): number {
  if (!(shape > 0)) throw new RangeError(`gammaDraw: shape must be > 0, got ${shape}`);
  if (shape < 1) {
    let u = rng.nextFloat();
    while (u === 0) u = rng.nextFloat();
    return gammaDraw(rng, shape + 1) * u ** (1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = nextGaussian(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.nextFloat();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Dirichlet(α, …, α) draw over k categories (normalized Gamma(α) draws). */
export function dirichletDraw(rng: Rng, alpha: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`dirichletDraw: k must be a positive integer, got ${k}`);
  for (;;) {
    const g = Array.from({ length: k }, () => gammaDraw(rng, alpha));
    const s = g.reduce((a, b) => a + b, 0);
    // tiny α can underflow every draw to 0: draw again
    if (s > 0 && Number.isFinite(s)) return g.map((x) => x / s);
  }
}

/** The population's shards (see the file comment). */
export class ShardTable {
  constructor(
    /** Device i's segments are [segStart[i], segStart[i+1]). */
    readonly segStart: Uint32Array,
    readonly segDomain: Uint8Array,
    readonly segOffset: Uint32Array,
    readonly segLength: Uint32Array,
  ) {}

  /** Devices in the table. */
  get devices(): number {
    return this.segStart.length - 1;
  }

  /** Device i's segments. */
  segments(i: number): { domain: number; offset: number; length: number }[] {
    if (!Number.isInteger(i) || i < 0 || i >= this.devices) throw new RangeError(`ShardTable.segments: device ${i} outside [0, ${this.devices})`);
    const out: { domain: number; offset: number; length: number }[] = [];
    for (let s = this.segStart[i]; s < this.segStart[i + 1]; s++) out.push({ domain: this.segDomain[s], offset: this.segOffset[s], length: this.segLength[s] });
    return out;
  }

  /** Characters device i holds. */
  chars(i: number): number {
    return this.segments(i).reduce((n, s) => n + s.length, 0);
  }

  /** Device i's share of characters per domain (sums to 1). */
  proportions(i: number, domains: number): number[] {
    const p = new Array<number>(domains).fill(0);
    const total = this.chars(i);
    for (const s of this.segments(i)) p[s.domain] += s.length / total;
    return p;
  }

  /** Device i's text, one string per segment, cut from the domains' training texts. */
  texts(i: number, domainTexts: readonly string[]): string[] {
    return this.segments(i).map((s) => domainTexts[s.domain].slice(s.offset, s.offset + s.length));
  }

  /** Bytes the table holds (what an idle device's data pointer costs). */
  get bytes(): number {
    return this.segStart.byteLength + this.segDomain.byteLength + this.segOffset.byteLength + this.segLength.byteLength;
  }
}

/** Split the domains' text into the population's shards (see the file comment). */
export function buildShards(o: ShardOptions): ShardTable {
  const w = 'buildShards';
  const D = o.domainLengths.length;
  if (D < 1 || D > 255 || o.domainLengths.some((n) => !Number.isInteger(n) || n <= 0)) throw new RangeError(`${w}: domainLengths must list 1–255 positive integers`);
  if (!Number.isInteger(o.devices) || o.devices < 1) throw new RangeError(`${w}: devices must be a positive integer, got ${o.devices}`);
  const meanChars = o.meanChars ?? 2000;
  const sigma = o.sizeSigma ?? 1;
  const minSeg = o.minSegmentChars ?? 200;
  if (!(meanChars >= minSeg)) throw new RangeError(`${w}: meanChars (${meanChars}) must be at least minSegmentChars (${minSeg})`);
  if (!(sigma >= 0)) throw new RangeError(`${w}: sizeSigma must be ≥ 0, got ${sigma}`);
  if (o.scheme.kind === 'dirichlet' && !(o.scheme.alpha > 0)) throw new RangeError(`${w}: dirichlet alpha must be > 0, got ${o.scheme.alpha}`);
  const rng = seededRng(o.seed ?? 0);
  // lognormal with mean meanChars: exp(μ + σZ), μ = ln(mean) − σ²/2
  const mu = Math.log(meanChars) - (sigma * sigma) / 2;
  const sizes = Array.from({ length: o.devices }, () => Math.max(minSeg, Math.round(Math.exp(mu + sigma * nextGaussian(rng)))));
  const segs: { device: number; domain: number; length: number }[] = [];
  if (o.scheme.kind === 'natural') {
    for (let i = 0; i < o.devices; i++) segs.push({ device: i, domain: i % D, length: sizes[i] });
    // a domain too short for its devices: every slice scaled down (still ≥ 1 char) so they fit end to end
    for (let d = 0; d < D; d++) {
      const mine = segs.filter((s) => s.domain === d);
      const total = mine.reduce((n, s) => n + s.length, 0);
      if (total > o.domainLengths[d]) {
        const f = o.domainLengths[d] / total;
        for (const s of mine) s.length = Math.max(1, Math.floor(s.length * f));
        let over = mine.reduce((n, s) => n + s.length, 0) - o.domainLengths[d];
        for (const s of mine) {
          if (over <= 0) break;
          if (s.length > 1) {
            s.length--;
            over--;
          }
        }
      }
    }
  } else {
    const { alpha } = o.scheme;
    for (let i = 0; i < o.devices; i++) {
      const p = dirichletDraw(rng, alpha, D);
      let parts = p.map((x, d) => ({ domain: d, length: Math.floor(x * sizes[i]) })).filter((s) => s.length >= minSeg);
      if (parts.length === 0) parts = [{ domain: p.indexOf(Math.max(...p)), length: sizes[i] }];
      const kept = parts.reduce((n, s) => n + s.length, 0);
      // renormalize the kept segments to the device's size
      for (const s of parts) segs.push({ device: i, domain: s.domain, length: Math.max(1, Math.min(o.domainLengths[s.domain], Math.round((s.length / kept) * sizes[i]))) });
    }
  }
  const cursor = new Array<number>(D).fill(0);
  const segStart = new Uint32Array(o.devices + 1);
  const segDomain = new Uint8Array(segs.length);
  const segOffset = new Uint32Array(segs.length);
  const segLength = new Uint32Array(segs.length);
  segs.forEach((s, k) => {
    segStart[s.device + 1] = k + 1;
    if (cursor[s.domain] + s.length > o.domainLengths[s.domain]) cursor[s.domain] = 0; // used up: wrap (dirichlet only)
    segDomain[k] = s.domain;
    segOffset[k] = cursor[s.domain];
    segLength[k] = s.length;
    cursor[s.domain] += s.length;
  });
  for (let i = 1; i <= o.devices; i++) segStart[i] = Math.max(segStart[i], segStart[i - 1]);
  return new ShardTable(segStart, segDomain, segOffset, segLength);
}
