/**
 * The one Strategy interface: configure a round, aggregate its results and failures into the
 * next global vector, and wrappers that add robustness or central DP to any strategy instead of
 * being copied into each (after Flower's strategy design). Vectors are flat adapter values
 * (LoraAdapter.toFlat()); updates are deltas (local − global).
 */
import type { Rng } from '../random/rng.js';
import { clipToNorm } from '../privacy/clip.js';
import { addGaussianNoise } from '../privacy/noise.js';
import { FedAvgAccumulator } from './fedavg.js';
import { bulyan, coordinateMedian, krum, multiKrum, trimmedMean } from './robust.js';
import { ServerOptimizer, type ServerOptimizerOptions } from './server-optimizers.js';

/** One device's contribution to a round. */
export interface ClientResult {
  readonly deviceId: string;
  /** local − global, same length as the global vector. */
  readonly update: Float32Array;
  /** Examples trained on (the FedAvg weight). */
  readonly numExamples: number;
}

/** A device that was selected but did not deliver (dropout, rejection, deadline). */
export interface ClientFailure {
  readonly deviceId: string;
  readonly reason: string;
}

/** What a strategy asks of the devices in a round (the DP wrappers set both; plain strategies ask for neither). */
export interface RoundPlan {
  readonly round: number;
  /** L2 bound C devices clip their update to; 0 = none. */
  readonly clipNorm: number;
  /** Standard deviation of the Gaussian noise each device adds to its clipped update; 0 = none. */
  readonly deviceNoiseStd: number;
}

/** The plan of a strategy that asks devices for nothing. */
export function plainRoundPlan(round: number): RoundPlan {
  return { round, clipNorm: 0, deviceNoiseStd: 0 };
}

/** The outcome of aggregating a round. */
export interface Aggregate {
  readonly global: Float32Array;
  readonly metrics: Readonly<Record<string, number>>;
}

/** A federated aggregation strategy. */
export interface Strategy {
  configureRound(round: number): RoundPlan;
  aggregate(round: number, global: Float32Array, results: readonly ClientResult[], failures: readonly ClientFailure[]): Aggregate;
  /**
   * Undo what the last `aggregate` changed in the strategy's own state (server-optimizer
   * moments), when its result is not published. Stateless strategies need none; wrappers pass
   * it to the strategy they wrap.
   */
  rollback?(): void;
}

/** FedAvg (example-weighted mean of deltas) followed by a server optimizer (default plain FedAvg, η = 1). */
export class FedAvgStrategy implements Strategy {
  private readonly optimizer: ServerOptimizer;
  private readonly minResults: number;

  constructor(options: { readonly optimizer?: ServerOptimizerOptions; readonly minResults?: number } = {}) {
    this.optimizer = new ServerOptimizer(options.optimizer ?? { kind: 'fedavg' });
    this.minResults = options.minResults ?? 1;
    if (!Number.isInteger(this.minResults) || this.minResults < 1) throw new RangeError(`FedAvgStrategy: minResults must be a positive integer, got ${this.minResults}`);
  }

  configureRound(round: number): RoundPlan {
    return plainRoundPlan(round);
  }

  aggregate(round: number, global: Float32Array, results: readonly ClientResult[], failures: readonly ClientFailure[]): Aggregate {
    if (results.length < this.minResults) throw new RangeError(`FedAvgStrategy.aggregate: round ${round} has ${results.length} results, fewer than the minimum ${this.minResults}`);
    const acc = new FedAvgAccumulator(global.length);
    for (const r of results) acc.add(r.update, r.numExamples);
    this.optimizer.checkpoint();
    return { global: this.optimizer.step(global, acc.mean()), metrics: { results: results.length, failures: failures.length, examples: acc.weight } };
  }

  /** Restore the server optimizer's moments from before the last aggregate. */
  rollback(): void {
    this.optimizer.rollback();
  }
}

/** A robust rule over the round's deltas. */
export type RobustRule = { readonly rule: 'median' } | { readonly rule: 'trimmed-mean'; readonly beta: number } | { readonly rule: 'krum' | 'multi-krum' | 'bulyan'; readonly f: number };

/** Wrap a strategy: replace the round's deltas by one robust aggregate of them before the inner strategy sees them. */
export class RobustStrategy implements Strategy {
  constructor(
    private readonly inner: Strategy,
    private readonly rule: RobustRule,
  ) {}

  /** Pass the rollback to the wrapped strategy. */
  rollback(): void {
    this.inner.rollback?.();
  }

  configureRound(round: number): RoundPlan {
    return this.inner.configureRound(round);
  }

  aggregate(round: number, global: Float32Array, results: readonly ClientResult[], failures: readonly ClientFailure[]): Aggregate {
    if (results.length === 0) return this.inner.aggregate(round, global, results, failures);
    const ups = results.map((r) => r.update);
    const r = this.rule;
    const robust =
      r.rule === 'median' ? coordinateMedian(ups) : r.rule === 'trimmed-mean' ? trimmedMean(ups, r.beta) : r.rule === 'krum' ? krum(ups, r.f) : r.rule === 'multi-krum' ? multiKrum(ups, r.f) : bulyan(ups, r.f);
    const examples = results.reduce((s, x) => s + x.numExamples, 0);
    const out = this.inner.aggregate(round, global, [{ deviceId: `robust:${r.rule}`, update: robust, numExamples: examples }], failures);
    return { global: out.global, metrics: { ...out.metrics, results: results.length } };
  }
}

/** Central DP settings: clip C, noise multiplier z, expected cohort m (the fixed denominator). */
export interface CentralDpOptions {
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  readonly expectedClients: number;
  readonly rng: Rng;
}

/**
 * Wrap a strategy with user-level central DP (DP-FedAvg, McMahan et al. 2018): clip every delta
 * to C (server-side, in case a device did not), sum them unweighted, add N(0, (zC)²) per
 * coordinate, divide by the expected cohort m, and hand that single noised mean to the inner
 * strategy. The noise std on the mean is zC/m.
 */
export class CentralDpStrategy implements Strategy {
  constructor(
    private readonly inner: Strategy,
    private readonly dp: CentralDpOptions,
  ) {
    if (!(dp.clipNorm > 0)) throw new RangeError(`CentralDpStrategy: clipNorm must be positive, got ${dp.clipNorm}`);
    if (!(dp.noiseMultiplier >= 0)) throw new RangeError(`CentralDpStrategy: noiseMultiplier must be ≥ 0, got ${dp.noiseMultiplier}`);
    if (!Number.isInteger(dp.expectedClients) || dp.expectedClients < 1) throw new RangeError(`CentralDpStrategy: expectedClients must be a positive integer, got ${dp.expectedClients}`);
  }

  /** Pass the rollback to the wrapped strategy. */
  rollback(): void {
    this.inner.rollback?.();
  }

  configureRound(round: number): RoundPlan {
    return { ...this.inner.configureRound(round), clipNorm: this.dp.clipNorm, deviceNoiseStd: 0 };
  }

  aggregate(round: number, global: Float32Array, results: readonly ClientResult[], failures: readonly ClientFailure[]): Aggregate {
    const { clipNorm: c, noiseMultiplier: z, expectedClients: m, rng } = this.dp;
    // unweighted sum of clipped deltas: user-level sensitivity is C whatever the example counts
    const acc = new FedAvgAccumulator(global.length);
    let clipped = 0;
    for (const r of results) {
      if (r.update.length !== global.length) throw new RangeError(`CentralDpStrategy.aggregate: ${r.deviceId}'s update has ${r.update.length} values, expected ${global.length}`);
      const cl = clipToNorm(r.update, c);
      if (cl.clipped) clipped++;
      acc.add(cl.update, 1);
    }
    const std = z * c;
    const mean = Float32Array.from(addGaussianNoise(acc.weightedSum(), std, rng), (v) => v / m);
    const out = this.inner.aggregate(round, global, [{ deviceId: 'central-dp', update: mean, numExamples: 1 }], failures);
    return { global: out.global, metrics: { ...out.metrics, results: results.length, clippedByServer: clipped, noiseStdOnMean: std / m } };
  }
}

/** Device-side DP settings: the clip C each device applies and the std of the noise it adds. */
export interface DeviceDpOptions {
  readonly clipNorm: number;
  readonly deviceNoiseStd: number;
}

/**
 * Wrap a strategy with device-side clipping (and noise, for local or distributed DP), as
 * Flower's client-side fixed-clipping wrappers do: the round plan tells every device C and its
 * noise std; the coordinator checks the bound on arrival, so aggregation is the inner strategy's.
 */
export class DeviceDpStrategy implements Strategy {
  constructor(
    private readonly inner: Strategy,
    private readonly dp: DeviceDpOptions,
  ) {
    if (!(dp.clipNorm > 0) || !Number.isFinite(dp.clipNorm)) throw new RangeError(`DeviceDpStrategy: clipNorm must be a positive number, got ${dp.clipNorm}`);
    if (!(dp.deviceNoiseStd >= 0) || !Number.isFinite(dp.deviceNoiseStd)) throw new RangeError(`DeviceDpStrategy: deviceNoiseStd must be a finite number ≥ 0, got ${dp.deviceNoiseStd}`);
  }

  /** Pass the rollback to the wrapped strategy. */
  rollback(): void {
    this.inner.rollback?.();
  }

  configureRound(round: number): RoundPlan {
    return { ...this.inner.configureRound(round), clipNorm: this.dp.clipNorm, deviceNoiseStd: this.dp.deviceNoiseStd };
  }

  aggregate(round: number, global: Float32Array, results: readonly ClientResult[], failures: readonly ClientFailure[]): Aggregate {
    return this.inner.aggregate(round, global, results, failures);
  }
}
