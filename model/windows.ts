/**
 * Token windows for training and evaluation. Every window starts with the tokenizer's start
 * token S (`startId`: BOS, or a document separator when the vocabulary has no BOS), as at
 * generation: inputs [S, t₀ … t_{T−2}] predict targets [t₀ … t_{T−1}].
 */
import type { Rng } from '../random/rng.js';

function checkStart(fn: string, startId: number): void {
  if (!Number.isInteger(startId) || startId < 0) throw new RangeError(`${fn}: startId must be a token id (an integer ≥ 0), got ${startId}`);
}

/** A batch of windows, row-major [batch, T]. */
export interface WindowBatch {
  readonly inputs: Int32Array;
  readonly targets: Int32Array;
  readonly batch: number;
  readonly T: number;
}

/** Build one batch from chunk start offsets into `tokens` (each chunk T tokens long), each window led by `startId`. */
export function batchAt(tokens: Int32Array, starts: readonly number[], T: number, startId: number): WindowBatch {
  checkStart('batchAt', startId);
  const B = starts.length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  starts.forEach((s, b) => {
    if (s < 0 || s + T > tokens.length) throw new RangeError(`batchAt: window [${s}, ${s + T}) outside ${tokens.length} tokens`);
    const chunk = tokens.subarray(s, s + T);
    inputs[b * T] = startId;
    inputs.set(chunk.subarray(0, T - 1), b * T + 1);
    targets.set(chunk, b * T);
  });
  return { inputs, targets, batch: B, T };
}

/** A batch of `batch` windows at uniformly random offsets. */
export function randomBatch(tokens: Int32Array, batch: number, T: number, rng: Rng, startId: number): WindowBatch {
  checkStart('randomBatch', startId);
  if (tokens.length < T) throw new RangeError(`randomBatch: the text has ${tokens.length} tokens, fewer than one window of ${T}`);
  const span = tokens.length - T + 1;
  return batchAt(tokens, Array.from({ length: batch }, () => Math.min(span - 1, Math.floor(rng.nextFloat() * span))), T, startId);
}

/**
 * Consecutive windows covering `tokens` in order (the last may be shorter), grouped into
 * batches of at most `batch` windows of equal length.
 */
export function* consecutiveBatches(tokens: Int32Array, T: number, batch: number, startId: number): Generator<WindowBatch> {
  checkStart('consecutiveBatches', startId);
  if (!Number.isInteger(T) || T <= 0) throw new RangeError(`consecutiveBatches: T must be a positive integer, got ${T}`);
  if (!Number.isInteger(batch) || batch <= 0) throw new RangeError(`consecutiveBatches: batch must be a positive integer, got ${batch}`);
  const full = Math.floor(tokens.length / T);
  for (let w = 0; w < full; w += batch) {
    const starts = Array.from({ length: Math.min(batch, full - w) }, (_, i) => (w + i) * T);
    yield batchAt(tokens, starts, T, startId);
  }
  const rest = tokens.length - full * T;
  if (rest > 0) yield batchAt(tokens, [full * T], rest, startId);
}
