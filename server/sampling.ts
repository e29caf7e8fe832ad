/**
 * Who takes part in a round: one round attempt's sampling state (program-runner.ts drives it).
 *
 * - `poisson`: every device that checks in while the round's selection is open gets ONE
 *   independent Bernoulli(q) coin from the runner's rng (crypto-strength in production), kept for
 *   the attempt, so checking in again cannot re-roll it. No cap: a cap would change the inclusion
 *   probabilities. Given the set of devices that checked in, each one's inclusion is independent
 *   with probability q — the Poisson subsampling the accountant charges (Abadi et al. 2016;
 *   Mironov, Talwar & Zhang 2019), and a device that never checked in is included with
 *   probability 0 ≤ q. Enrolments and the declared population do not enter q.
 * - `fixed-cohort`: the devices that check in during the selection window are candidates; when
 *   it closes, min(m, n) of the n are drawn uniformly without replacement. Offered without DP
 *   only (config rules say why).
 * - `first-come`: the runner hands work to the first devices that check in (no DP).
 */
import type { Rng } from '../random/rng.js';

/** A sampling scheme's name. */
export type SamplingScheme = 'first-come' | 'poisson' | 'fixed-cohort';

/** What a check-in gets from the sampler. */
export type Admission = 'sampled' | 'not-sampled' | 'pending' | 'closed';

/** A uniform integer in [0, n) from `rng` (rejection sampling: no modulo bias). */
export function uniformBelow(rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`uniformBelow: n must be an integer in [1, 2^32], got ${n}`);
  const limit = 2 ** 32 - (2 ** 32 % n);
  for (;;) {
    const x = rng.nextU32();
    if (x < limit) return x % n;
  }
}

/** `k` distinct items of `items` drawn uniformly without replacement (partial Fisher–Yates). */
export function sampleWithoutReplacement<T>(rng: Rng, items: readonly T[], k: number): T[] {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`sampleWithoutReplacement: k must be an integer ≥ 0, got ${k}`);
  const a = items.slice();
  const m = Math.min(k, a.length);
  for (let i = 0; i < m; i++) {
    const j = i + uniformBelow(rng, a.length - i);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, m);
}

/** One round attempt's sampling: coins (poisson) or candidates and the draw (fixed-cohort). */
export class RoundSampler {
  private readonly coins = new Map<string, boolean>();
  private readonly candidates = new Set<string>();
  private chosen?: Set<string>;
  private closed = false;

  /**
   * @param scheme the program's scheme
   * @param rate poisson's q (ignored otherwise)
   * @param cohort fixed-cohort's m (ignored otherwise)
   * @param rng the coin / draw source
   */
  constructor(
    readonly scheme: SamplingScheme,
    readonly rate: number,
    private readonly cohort: number,
    private readonly rng: Rng,
  ) {
    if (scheme === 'poisson' && !(rate > 0 && rate <= 1)) throw new RangeError(`RoundSampler: rate must be in (0, 1] for poisson sampling, got ${rate}`);
    if (scheme === 'fixed-cohort' && !(Number.isInteger(cohort) && cohort >= 1)) throw new RangeError(`RoundSampler: cohort must be a positive integer for fixed-cohort sampling, got ${cohort}`);
  }

  /** True once the selection has closed (no new coins or candidates). */
  get selectionClosed(): boolean {
    return this.closed;
  }

  /** Devices that checked in while the selection was open (those that got a coin, or the candidates). */
  get eligible(): number {
    return this.scheme === 'poisson' ? this.coins.size : this.candidates.size;
  }

  /** Devices the sampling chose so far. */
  get sampled(): number {
    if (this.scheme === 'poisson') {
      let n = 0;
      for (const c of this.coins.values()) if (c) n++;
      return n;
    }
    return this.chosen?.size ?? 0;
  }

  /**
   * A device checks in: poisson flips its one coin (or returns the one it already has);
   * fixed-cohort records a candidate ('pending' until the draw). 'closed': it checked in after
   * the selection closed, and is not in this round.
   */
  admit(deviceId: string): Admission {
    if (this.scheme === 'first-come') return 'sampled';
    if (this.scheme === 'poisson') {
      const coin = this.coins.get(deviceId);
      if (coin !== undefined) return coin ? 'sampled' : 'not-sampled';
      if (this.closed) return 'closed';
      const heads = this.rng.nextFloat() < this.rate;
      this.coins.set(deviceId, heads);
      return heads ? 'sampled' : 'not-sampled';
    }
    if (this.chosen) return this.chosen.has(deviceId) ? 'sampled' : this.candidates.has(deviceId) ? 'not-sampled' : 'closed';
    if (this.closed) return 'closed';
    this.candidates.add(deviceId);
    return 'pending';
  }

  /** Close the selection; fixed-cohort draws its cohort now and returns it (poisson: the devices sampled). */
  closeSelection(): string[] {
    if (!this.closed) {
      this.closed = true;
      if (this.scheme === 'fixed-cohort') this.chosen = new Set(sampleWithoutReplacement(this.rng, [...this.candidates], this.cohort));
    }
    if (this.scheme === 'poisson') return [...this.coins].filter(([, c]) => c).map(([d]) => d);
    return [...(this.chosen ?? [])];
  }
}
