/**
 * Exact-ΔW aggregation as a Strategy: the next global adapter is, matrix by matrix, the best
 * rank-r factorisation of the example-weighted mean of the devices' products B_k·A_k (local =
 * global + delta), instead of FedIT's separate means of A and B. Each rank component is then
 * rescaled so A's rows keep the length the global A's rows had (the product is unchanged):
 * LoRA keeps training from factors of the scale it started with.
 */
import { exactDeltaW, type LoraFactors } from './lora-exact.js';
import { plainRoundPlan, type Aggregate, type ClientFailure, type ClientResult, type RoundPlan, type Strategy } from './strategy.js';

/** Where one adapted matrix's Aᵀ [in, r] and Bᵀ [r, out] sit in the flat vector. */
export interface LoraSegment {
  readonly inDim: number;
  readonly outDim: number;
  readonly aOffset: number;
  readonly bOffset: number;
}

function transposeInto(src: Float32Array, srcOff: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[srcOff + i * cols + j];
  return out;
}

/** The exact-ΔW strategy over a flat LoRA layout of rank `rank`. */
export class ExactDeltaWStrategy implements Strategy {
  constructor(
    private readonly segments: readonly LoraSegment[],
    private readonly rank: number,
  ) {
    if (!Number.isInteger(rank) || rank < 1) throw new RangeError(`ExactDeltaWStrategy: rank must be a positive integer, got ${rank}`);
    if (segments.length === 0) throw new RangeError('ExactDeltaWStrategy: segments must not be empty');
  }

  configureRound(round: number): RoundPlan {
    return plainRoundPlan(round);
  }

  aggregate(round: number, global: Float32Array, results: readonly ClientResult[], failures: readonly ClientFailure[]): Aggregate {
    if (results.length === 0) throw new RangeError(`ExactDeltaWStrategy.aggregate: round ${round} has no results`);
    const r = this.rank;
    for (const x of results) if (x.update.length !== global.length) throw new RangeError(`ExactDeltaWStrategy.aggregate: ${x.deviceId}'s update has ${x.update.length} values, expected ${global.length}`);
    const next = global.slice();
    const locals = results.map((x) => Float32Array.from(global, (g, i) => g + x.update[i]));
    for (const s of this.segments) {
      // A [r, in] = (Aᵀ [in, r])ᵀ ; B [out, r] = (Bᵀ [r, out])ᵀ
      const fs: LoraFactors[] = locals.map((l, k) => ({ a: transposeInto(l, s.aOffset, s.inDim, r), b: transposeInto(l, s.bOffset, r, s.outDim), rank: r, weight: results[k].numExamples }));
      const { a, b } = exactDeltaW(fs, s.outDim, s.inDim, r);
      // keep A's row length at the global's (the product B·A is unchanged)
      const ga = transposeInto(global, s.aOffset, s.inDim, r);
      let target = 0;
      for (let t = 0; t < r; t++) {
        let n = 0;
        for (let c = 0; c < s.inDim; c++) n += ga[t * s.inDim + c] ** 2;
        target += Math.sqrt(n) / r;
      }
      for (let t = 0; t < r; t++) {
        let n = 0;
        for (let c = 0; c < s.inDim; c++) n += a[t * s.inDim + c] ** 2;
        const len = Math.sqrt(n);
        if (!(len > 0) || !(target > 0)) continue;
        const g = target / len;
        for (let c = 0; c < s.inDim; c++) a[t * s.inDim + c] *= g;
        for (let o = 0; o < s.outDim; o++) b[o * r + t] /= g;
      }
      next.set(transposeInto(a, 0, r, s.inDim), s.aOffset);
      next.set(transposeInto(b, 0, s.outDim, r), s.bOffset);
    }
    return { global: next, metrics: { results: results.length, failures: failures.length } };
  }
}
