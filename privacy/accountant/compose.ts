/**
 * Composition of heterogeneous rounds: each federated round is one step of the sampled Gaussian
 * mechanism with its own sampling rate q and noise multiplier σ (the cohort may be drawn from a
 * growing population, or z may change); RDP adds up order by order, then converts to (ε, δ).
 * This is what a program's privacy ledger spends.
 */
import { rdpToEpsilon, type Conversion } from './conversion.js';
import { DEFAULT_ORDERS, sampledGaussianRdp } from './rdp.js';

/** One accounted step. */
export interface AccountedStep {
  /** Sampling rate: cohort / population, in (0, 1]. */
  readonly q: number;
  /** Noise multiplier σ = noise std / sensitivity. */
  readonly sigma: number;
}

/** RDP of a sequence of steps at each order (sum of the steps' RDP). */
export function composeRdp(steps: readonly AccountedStep[], orders: readonly number[] = DEFAULT_ORDERS): number[] {
  const total = orders.map(() => 0);
  // identical steps are common: compute each distinct (q, σ) once
  const groups = new Map<string, { step: AccountedStep; count: number }>();
  for (const s of steps) {
    const key = `${s.q}|${s.sigma}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { step: s, count: 1 });
  }
  for (const { step, count } of groups.values()) orders.forEach((a, i) => (total[i] += count * sampledGaussianRdp(step.q, step.sigma, a)));
  return total;
}

/** (ε, δ) spent by a sequence of steps; ε = 0 for no steps. */
export function epsilonOfSteps(steps: readonly AccountedStep[], delta: number, conversion: Conversion = 'improved'): { epsilon: number; order: number } {
  if (!(delta > 0 && delta < 1)) throw new RangeError(`epsilonOfSteps: delta must be in (0, 1), got ${delta}`);
  if (steps.length === 0) return { epsilon: 0, order: Number.NaN };
  return rdpToEpsilon(DEFAULT_ORDERS, composeRdp(steps), delta, conversion);
}
