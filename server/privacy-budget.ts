/**
 * A program's privacy budget: the durable ledger of per-round spends (scheme, q, eligible and
 * selected counts, population, σ), the ε spent so far at the program's δ, whether the next
 * round may run, and the charge a round makes before its aggregate exists (so a crash can only
 * over-count).
 *
 * A DP program samples by Poisson (config rules refuse the other schemes under DP): each device
 * that checks in during a round's selection is included independently with probability q =
 * sampling.rate (default cohortSize / dp.population), so the accountant charges exactly that q —
 * the Poisson-subsampled Gaussian (Mironov, Talwar & Zhang 2019). Neither enrolments nor the
 * declared population enter q (fake enrolments cannot buy ε; an honest device's inclusion is its
 * own coin); the population sets only the expected cohort, the fixed denominator of the mean.
 * The constructor refuses a ledger it cannot account (a row of another scheme, or out of range).
 */
import { epsilonOfSteps, type AccountedStep } from '../privacy/accountant/index.js';
import type { ProgramSpec } from './program-config.js';
import type { LedgerEntry, StateStore } from './storage/index.js';

/** The sampling of a round: its scheme, rate and the declared population. */
export interface Sampling {
  readonly scheme: string;
  readonly q: number;
  readonly population: number;
}

/** What a round's sampling actually drew: devices that checked in during its selection, and those it chose. */
export interface Drawn {
  readonly eligible: number;
  readonly selected: number;
}

/** Why the accountant cannot account ledger row `e`, or undefined if it can (a Poisson step with 0 < q ≤ 1, σ > 0). */
export function unaccountableRow(e: LedgerEntry): string | undefined {
  const where = `privacy ledger row of round ${e.roundNumber} (${e.roundId})`;
  if (e.scheme !== 'poisson')
    return `${where} was sampled ${e.scheme === '' ? 'by an unrecorded scheme (first-come, before sampling schemes were recorded)' : `"${e.scheme}"`}, which no accountant here covers: its ε cannot be stated; start a new program id (the old ledger stays for audit)`;
  if (!(e.q > 0 && e.q <= 1)) return `${where} has q = ${e.q}, outside (0, 1]`;
  if (!(e.sigma > 0 && Number.isFinite(e.sigma))) return `${where} has σ = ${e.sigma}, not a positive number`;
  return undefined;
}

/** Ledger, ε and admission of one program's rounds (every method is a no-op spend without DP). */
export class PrivacyBudget {
  private readonly steps: AccountedStep[];
  private spentEpsilon: number;
  /** Ledger rows by round id: a round charged already (by a driver that died aggregating it) is not charged twice. */
  private readonly charged: Map<string, LedgerEntry>;

  private constructor(
    private readonly spec: ProgramSpec,
    private readonly store: StateStore,
    ledger: readonly LedgerEntry[],
  ) {
    if (this.private)
      for (const e of ledger) {
        const why = unaccountableRow(e);
        if (why) throw new RangeError(`program "${spec.id}": ${why}`);
      }
    this.steps = ledger.map((e) => ({ q: e.q, sigma: e.sigma }));
    this.charged = new Map(ledger.map((e) => [e.roundId, e]));
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

  /** The sampling of a round (see the file comment). */
  sampling(): Sampling {
    const { spec } = this;
    return { scheme: spec.sampling.scheme, q: spec.sampling.rate, population: spec.dp.population };
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
   * updates that close it) must stay within the budget. Under Poisson sampling q does not move
   * with enrolments, so a refusal is `final`.
   */
  refusal(roundNumber: number): { readonly reason: string; readonly final: boolean } | undefined {
    const { dp } = this.spec;
    if (!this.private || !Number.isFinite(dp.epsilonBudget)) return undefined;
    const { q } = this.sampling();
    // distributed noise shrinks with fewer survivors: the worst case is the fewest that can close a round
    const next = epsilonOfSteps([...this.steps, { q, sigma: this.sigma(this.spec.minUpdates) }], dp.delta).epsilon;
    if (next <= dp.epsilonBudget) return undefined;
    const why = `privacy budget: round ${roundNumber} would bring ε to ${next.toFixed(3)} > the budget ${dp.epsilonBudget} (δ = ${dp.delta}; q = ${q.toPrecision(3)}; ${this.steps.length} round(s) spent ε = ${this.spentEpsilon.toFixed(3)})`;
    return { reason: `${why}; no more rounds`, final: true };
  }

  /**
   * Charge a round that aggregates `updates` contributions and whose sampling drew `drawn`:
   * durable before its aggregate exists. Returns the entry (undefined without DP).
   */
  async charge(roundId: string, roundNumber: number, updates: number, drawn: Drawn): Promise<LedgerEntry | undefined> {
    if (!this.private) return undefined;
    const before = this.charged.get(roundId);
    if (before) return before; // its spend is on disk already (a takeover resumes the round it was charged for)
    const { spec } = this;
    const { scheme, q, population } = this.sampling();
    const step = { q, sigma: this.sigma(updates) };
    const entry0 = { programId: spec.id, roundId, roundNumber, q, population, scheme, eligible: drawn.eligible, selected: drawn.selected, sigma: step.sigma, delta: spec.dp.delta };
    const why = unaccountableRow({ ...entry0, epsilonAfter: 0 });
    if (why) throw new RangeError(`PrivacyBudget.charge: ${why}`);
    const after = epsilonOfSteps([...this.steps, step], spec.dp.delta).epsilon;
    const entry: LedgerEntry = { ...entry0, epsilonAfter: after };
    await this.store.appendLedger(entry);
    this.charged.set(roundId, entry);
    this.steps.push(step);
    this.spentEpsilon = after;
    return entry;
  }
}
