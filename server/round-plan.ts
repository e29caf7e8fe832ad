/**
 * Strategy planning of a program's rounds: the inner strategy (FedAvg with the program's server
 * optimizer, or exact ΔW — one instance for the program's life, it may hold optimizer state),
 * wrapped each round by the program's robust rule and its DP wrapper with the round's clip norm
 * C (adaptive clipping moves C between rounds). The wrapped strategy's own `configureRound`
 * says the round's C and device noise std, as Flower's DP wrappers do; the runner hands that to
 * devices. Also the check an aggregate passes before it is published.
 */
import { CentralDpStrategy, DeviceDpStrategy, ExactDeltaWStrategy, FedAvgStrategy, RobustStrategy, type RoundPlan, type Strategy } from '../aggregators/index.js';
import { flatLayout } from '../model/adapter-flat.js';
import type { LlamaConfig } from '../model/config.js';
import type { Rng } from '../random/rng.js';
import { AdaptiveClip } from '../privacy/adaptive-clip.js';
import { noiseStd } from '../privacy/noise.js';
import type { ProgramSpec } from './program-config.js';

/** A round's plan (what devices are asked) and the strategy that aggregates it. */
export interface PlannedRound {
  readonly plan: RoundPlan;
  readonly strategy: Strategy;
}

/** Plans each round of one program. */
export class RoundPlanner {
  private readonly inner: Strategy;
  private readonly adaptive?: AdaptiveClip;

  /** `resumeClip`: the C of the program's last completed round, where adaptive clipping resumes. */
  constructor(
    private readonly spec: ProgramSpec,
    baseConfig: LlamaConfig,
    private readonly rng: Rng,
    resumeClip?: number,
  ) {
    this.inner = spec.aggregation === 'exact-dw' ? new ExactDeltaWStrategy(flatLayout(baseConfig, spec.lora).segments, spec.lora.rank) : new FedAvgStrategy({ optimizer: spec.serverOptimizer });
    if (spec.dp.adaptiveClip) this.adaptive = new AdaptiveClip({ initialClip: resumeClip || spec.dp.clipNorm, ...spec.dp.adaptiveClip });
  }

  /** The clip bound C the next round will use (0 = none). */
  clipNorm(): number {
    return this.adaptive?.clip ?? this.spec.dp.clipNorm;
  }

  /**
   * Round `round`'s strategy and plan: the robust rule, then central DP with C and z (under
   * adaptive clipping the update's share z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2) of the noise), or
   * device-side clipping with each device's noise std for local and distributed DP.
   */
  plan(round: number): PlannedRound {
    const { spec } = this;
    const { mode, noiseMultiplier: z, adaptiveClip } = spec.dp;
    const c = this.clipNorm();
    let s = this.inner;
    if (spec.robust) s = new RobustStrategy(s, spec.robust);
    if (mode === 'central') {
      const zRound = this.adaptive && adaptiveClip ? (z ** -2 - (2 * adaptiveClip.countNoiseStd) ** -2) ** -0.5 : z;
      s = new CentralDpStrategy(s, { clipNorm: c, noiseMultiplier: zRound, expectedClients: spec.cohortSize, rng: this.rng });
    } else if (c > 0) {
      s = new DeviceDpStrategy(s, { clipNorm: c, deviceNoiseStd: mode === 'local' || mode === 'distributed' ? noiseStd(mode, z, c, spec.cohortSize) : 0 });
    }
    return { plan: s.configureRound(round), strategy: s };
  }

  /** After a completed round: adaptive clipping moves C by the devices' "unclipped" reports. */
  afterRound(unclippedReports: readonly boolean[]): void {
    if (this.adaptive && unclippedReports.length) this.adaptive.update(unclippedReports, this.rng);
  }

  /**
   * True when rounds can aggregate as updates arrive: plain FedAvg (any server optimizer) with no
   * robust rule, no central noise (which needs the unweighted sum of clipped updates) and no SecAgg.
   */
  get streams(): boolean {
    const { spec } = this;
    return spec.aggregation === 'fedavg' && !spec.robust && spec.dp.mode !== 'central' && !spec.secagg;
  }
}

/**
 * Largest |value| a published adapter may hold. LoRA factors are O(1) or below; a value past
 * this is the mark of an attack or a diverged optimizer, never of training.
 */
export const ADAPTER_VALUE_LIMIT = 1e4;

/** Why an aggregate may not be published as the next version, or undefined if it may. */
export function publishRefusal(next: Float32Array, contributors: number, minContributors: number): string | undefined {
  if (contributors < minContributors) return `only ${contributors} device(s) contributed, fewer than minContributors ${minContributors}: one device's update is not published as the adapter`;
  for (let i = 0; i < next.length; i++) {
    if (!Number.isFinite(next[i])) return `the aggregate holds a non-finite value (${next[i]}) at index ${i}`;
    if (Math.abs(next[i]) > ADAPTER_VALUE_LIMIT) return `the aggregate holds an absurd value (${next[i]}) at index ${i}, beyond ±${ADAPTER_VALUE_LIMIT}`;
  }
  return undefined;
}
