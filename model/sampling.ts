/** Choosing the next token from logits, as llama2.c's run.c does: greedy, temperature, top-p. */
import type { Rng } from '../random/rng.js';

/** Index of the largest value (first on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Softmax in place (max-subtracted for stability). */
export function softmaxInPlace(x: Float32Array | number[]): void {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) max = Math.max(max, x[i]);
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    x[i] = Math.exp(x[i] - max);
    sum += x[i];
  }
  for (let i = 0; i < x.length; i++) x[i] /= sum;
}

/** How to sample. */
export interface SamplingOptions {
  /** 0 = greedy. */
  readonly temperature: number;
  /** Nucleus threshold in (0, 1]; 1 (or ≤ 0) samples from the whole distribution. */
  readonly topP: number;
}

/** Pick the next token from one row of logits. */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  if (opts.temperature === 0) return argmax(logits);
  const p = Float32Array.from(logits, (v) => v / opts.temperature);
  softmaxInPlace(p);
  const r = rng.nextFloat();
  if (opts.topP <= 0 || opts.topP >= 1) {
    let cdf = 0;
    for (let i = 0; i < p.length; i++) {
      cdf += p[i];
      if (r < cdf) return i;
    }
    return p.length - 1;
  }
  // top-p: keep the smallest set of most likely tokens whose mass exceeds topP
  const cutoff = (1 - opts.topP) / (p.length - 1);
  const idx: number[] = [];
  for (let i = 0; i < p.length; i++) if (p[i] >= cutoff) idx.push(i);
  idx.sort((a, b) => p[b] - p[a]);
  let cum = 0;
  let last = idx.length - 1;
  for (let i = 0; i < idx.length; i++) {
    cum += p[idx[i]];
    if (cum > opts.topP) {
      last = i;
      break;
    }
  }
  const target = r * cum;
  let acc = 0;
  for (let i = 0; i <= last; i++) {
    acc += p[idx[i]];
    if (target < acc) return idx[i];
  }
  return idx[last];
}
