/**
 * Adaptive clipping (Andrew et al. 2021): the clip norm C tracks a target quantile γ of the
 * devices' update norms. Each device reports bᵢ = 1 if its norm was ≤ C; the coordinator noises
 * the count, b̄ = (Σ bᵢ + N(0, σ_b²)) / n, and sets C ← C · exp(−η (b̄ − γ)). Defaults: C₀ = 0.1,
 * γ = 0.5, η = 0.2.
 */
import { nextGaussian, type Rng } from '../random/rng.js';

/** Adaptive clipping settings. */
export interface AdaptiveClipOptions {
  /** Initial clip norm. Default 0.1. */
  readonly initialClip?: number;
  /** Target quantile of update norms. Default 0.5. */
  readonly targetQuantile?: number;
  /** Geometric learning rate. Default 0.2. */
  readonly learningRate?: number;
  /** Std of the noise on the clipped-count (σ_b). Default 0 (add it for DP). */
  readonly countNoiseStd?: number;
}

/** The clip-norm state of one program. */
export class AdaptiveClip {
  private c: number;
  private readonly gamma: number;
  private readonly eta: number;
  private readonly sigmaB: number;

  constructor(options: AdaptiveClipOptions = {}) {
    this.c = options.initialClip ?? 0.1;
    this.gamma = options.targetQuantile ?? 0.5;
    this.eta = options.learningRate ?? 0.2;
    this.sigmaB = options.countNoiseStd ?? 0;
    if (!(this.c > 0) || !Number.isFinite(this.c)) throw new RangeError(`AdaptiveClip: initialClip must be positive, got ${this.c}`);
    if (!(this.gamma > 0 && this.gamma < 1)) throw new RangeError(`AdaptiveClip: targetQuantile must be in (0, 1), got ${this.gamma}`);
    if (!(this.eta > 0) || !Number.isFinite(this.eta)) throw new RangeError(`AdaptiveClip: learningRate must be positive, got ${this.eta}`);
    if (!(this.sigmaB >= 0) || !Number.isFinite(this.sigmaB)) throw new RangeError(`AdaptiveClip: countNoiseStd must be ≥ 0, got ${this.sigmaB}`);
  }

  /** The clip norm devices use this round. */
  get clip(): number {
    return this.c;
  }

  /** Fold in one round's reports (true = the device's norm was ≤ clip); returns the new clip. */
  update(unclipped: readonly boolean[], rng: Rng): number {
    if (!Array.isArray(unclipped) || unclipped.length === 0) throw new RangeError('AdaptiveClip.update: unclipped must be a non-empty array of reports');
    if (!rng || typeof rng.nextFloat !== 'function') throw new TypeError('AdaptiveClip.update: rng must be an Rng');
    const count = unclipped.reduce((s, b) => s + (b ? 1 : 0), 0);
    const noisy = this.sigmaB > 0 ? count + this.sigmaB * nextGaussian(rng) : count;
    const bBar = noisy / unclipped.length;
    this.c *= Math.exp(-this.eta * (bBar - this.gamma));
    return this.c;
  }
}
