/**
 * A program's privacy budget: the durable ledger of per-round spends (q, population, σ), the ε
 * spent so far at the program's δ, whether the next round may run, and the charge a round makes
 * before its aggregate exists (so a crash can only over-count).
 *
 * The sampling rate is q = min(1, selected / min(declared population, devices enrolled)), where
 * selected = ⌈cohortSize × overSelect⌉ is how many devices a round hands work to — any of them
 * may contribute (under SecAgg every survivor does), so a device's chance of being in the sum
 * is at most that. Enrolments can only raise q (a cohort drawn from fewer real devices costs
 * more), never lower it below the operator's declaration, so fake enrolments cannot buy ε.
 */
import { epsilonOfSteps, type AccountedStep } from '../privacy/accountant/index.js';
import type { ProgramSpec } from './program-config.js';
import type { LedgerEntry, StateStore } from './storage/index.js';

/** The sampling of a round: its rate and the population it was computed over. */
export interface Sampling {
  readonly q: number;
  readonly population: number;
}

/** Ledger, ε and admission of one program's rounds (every method is a no-op spend without DP). */
export class PrivacyBudget {
  private readonly steps: AccountedStep[];
  private spentEpsilon: number;

  private constructor(
    private readonly spec: ProgramSpec,
    private readonly store: StateStore,
    ledger: readonly LedgerEntry[],
  ) {
    this.steps = ledger.map((e) => ({ q: e.q, sigma: e.sigma }));
    this.spentEpsilon = this.private ? epsilonOfSteps(this.steps, spec.dp.delta).epsilon : 0;
  }

  /** The budget of a program, its spends so far read from the store's ledger. */
  static async load(spec: ProgramSpec, store: StateStore): Promise<PrivacyBudget> {
    return new PrivacyBudget(spec, store, await store.ledger(spec.id));
  }

  /** True when rounds of this program spend privacy. */
  get private(): boolean {
    return this.spec.dp.mode !== 'none';
  }

  /** ε spent so far at the program's δ (0 without DP). */
  spent(): number {
    return this.spentEpsilon;
  }

  /** Rounds charged so far. */
  get rounds(): number {
    return this.steps.length;
  }

  /** The sampling of a round now (see the file comment). */
  async sampling(): Promise<Sampling> {
    const { spec } = this;
    const population = Math.max(1, Math.min(spec.dp.population, await this.store.deviceCount(spec.id)));
    return { q: Math.min(1, Math.ceil(spec.cohortSize * spec.overSelect) / population), population };
  }

  /**
   * The noise multiplier of a round's sum with `updates` contributions: z for central noise; for
   * local noise each device adds z·C, so the sum has at least z·C; for distributed noise the
   * survivors' shares add up to z·C·√(updates / cohort) — dropouts cost privacy.
   */
  sigma(updates: number): number {
    const { mode, noiseMultiplier: z } = this.spec.dp;
    return mode === 'distributed' ? z * Math.sqrt(Math.min(1, updates / this.spec.cohortSize)) : z;
  }

  /**
   * Why round `roundNumber` may not run, or undefined if it may: its worst case (the fewest
   * updates that close it, the sampling now — later enrolments only lower q) must stay within
   * the budget. The refusal is `final` once the declared population is enrolled (q cannot fall
   * further); before that, more enrolments may let the round run.
   */
  async refusal(roundNumber: number): Promise<{ readonly reason: string; readonly final: boolean } | undefined> {
    const { dp } = this.spec;
    if (!this.private || !Number.isFinite(dp.epsilonBudget)) return undefined;
    const { q, population } = await this.sampling();
    const next = epsilonOfSteps([...this.steps, { q, sigma: this.sigma(this.spec.minUpdates) }], dp.delta).epsilon;
    if (next <= dp.epsilonBudget) return undefined;
    const final = population >= dp.population;
    const why = `privacy budget: round ${roundNumber} would bring ε to ${next.toFixed(3)} > the budget ${dp.epsilonBudget} (δ = ${dp.delta}; q = ${q.toPrecision(3)}; ${this.steps.length} round(s) spent ε = ${this.spentEpsilon.toFixed(3)})`;
    return { reason: final ? `${why}; no more rounds` : `${why}; waiting for more of the declared ${dp.population} devices to enrol`, final };
  }

  /** Charge a round that aggregates `updates` contributions: durable before its aggregate exists. Returns the entry (undefined without DP). */
  async charge(roundId: string, roundNumber: number, updates: number): Promise<LedgerEntry | undefined> {
    if (!this.private) return undefined;
    const { spec } = this;
    const { q, population } = await this.sampling();
    const step = { q, sigma: this.sigma(updates) };
    const after = epsilonOfSteps([...this.steps, step], spec.dp.delta).epsilon;
    const entry: LedgerEntry = { programId: spec.id, roundId, roundNumber, q, population, sigma: step.sigma, epsilonAfter: after, delta: spec.dp.delta };
    await this.store.appendLedger(entry);
    this.steps.push(step);
    this.spentEpsilon = after;
    return entry;
  }
}
