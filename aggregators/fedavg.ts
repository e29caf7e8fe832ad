/**
 * FedAvg as a streaming accumulator: Σ wₖ·uₖ and Σ wₖ in float64, O(model) memory however many
 * updates arrive. Pure math over Float32Array, no I/O.
 */

/** Running example-weighted mean of equal-length updates. */
export class FedAvgAccumulator {
  private readonly sum: Float64Array;
  private totalWeight = 0;
  private n = 0;

  /** @param length the update length every added update must have. */
  constructor(readonly length: number) {
    if (!Number.isInteger(length) || length <= 0) throw new RangeError(`FedAvgAccumulator: length must be a positive integer, got ${length}`);
    this.sum = new Float64Array(length);
  }

  /** Add one update with weight `weight` (e.g. its example count). */
  add(update: Float32Array, weight: number): void {
    if (!(update instanceof Float32Array)) throw new TypeError('FedAvgAccumulator.add: update must be a Float32Array');
    if (update.length !== this.length) throw new RangeError(`FedAvgAccumulator.add: update has ${update.length} values, expected ${this.length}`);
    if (typeof weight !== 'number' || !(weight > 0) || !Number.isFinite(weight)) throw new RangeError(`FedAvgAccumulator.add: weight must be a positive finite number, got ${weight}`);
    for (let i = 0; i < update.length; i++) {
      if (!Number.isFinite(update[i])) throw new RangeError(`FedAvgAccumulator.add: update holds a non-finite value at ${i}`);
    }
    for (let i = 0; i < update.length; i++) this.sum[i] += weight * update[i];
    this.totalWeight += weight;
    this.n++;
  }

  /** Updates added so far. */
  get count(): number {
    return this.n;
  }

  /** Sum of weights so far. */
  get weight(): number {
    return this.totalWeight;
  }

  /** The weighted sum Σ wₖ·uₖ (for strategies that add noise before dividing). */
  weightedSum(): Float64Array {
    return Float64Array.from(this.sum);
  }

  /** The weighted mean; throws if nothing was added. */
  mean(): Float32Array {
    if (this.n === 0) throw new RangeError('FedAvgAccumulator.mean: no updates were added');
    return Float32Array.from(this.sum, (v) => v / this.totalWeight);
  }
}

/** Example-weighted mean of updates (one-shot form of {@link FedAvgAccumulator}). */
export function fedAvg(updates: readonly { update: Float32Array; weight: number }[]): Float32Array {
  if (updates.length === 0) throw new RangeError('fedAvg: no updates');
  const acc = new FedAvgAccumulator(updates[0].update.length);
  for (const u of updates) acc.add(u.update, u.weight);
  return acc.mean();
}
