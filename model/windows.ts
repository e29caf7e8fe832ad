/**
 * Token windows for training and evaluation. Every window starts with the tokenizer's start
 * token S (`startId`: BOS, or a document separator when the vocabulary has no BOS), as at
 * generation: inputs [S, t₀ … t_{T−2}] predict targets [t₀ … t_{T−1}]. With a loss mask aligned
 * with the tokens (1 = scored, e.g. assistant replies), each batch carries per-target weights.
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
  /** Per-target loss weights (1 scored, 0 not), present when the batch was built with a loss mask. */
  readonly weights?: Float32Array;
}

/** A token stream with a loss mask aligned with it: lossMask[i] = 1 when tokens[i] is scored as a target. */
export interface MaskedTokens {
  readonly tokens: Int32Array;
  readonly lossMask: Uint8Array;
}

/** Throws unless `lossMask` is a Uint8Array as long as `tokens`. */
export function checkLossMask(where: string, tokens: Int32Array, lossMask: Uint8Array | undefined): void {
  if (lossMask === undefined) return;
  if (!(lossMask instanceof Uint8Array)) throw new TypeError(`${where}: lossMask must be a Uint8Array`);
  if (lossMask.length !== tokens.length) throw new RangeError(`${where}: lossMask has ${lossMask.length} entries for ${tokens.length} tokens`);
}

/** Build one batch from chunk start offsets into `tokens` (each chunk T tokens long), each window led by `startId`. */
export function batchAt(tokens: Int32Array, starts: readonly number[], T: number, startId: number, lossMask?: Uint8Array): WindowBatch {
  checkStart('batchAt', startId);
  checkLossMask('batchAt', tokens, lossMask);
  const B = starts.length;
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const weights = lossMask ? new Float32Array(B * T) : undefined;
  starts.forEach((s, b) => {
    if (s < 0 || s + T > tokens.length) throw new RangeError(`batchAt: window [${s}, ${s + T}) outside ${tokens.length} tokens`);
    const chunk = tokens.subarray(s, s + T);
    inputs[b * T] = startId;
    inputs.set(chunk.subarray(0, T - 1), b * T + 1);
    targets.set(chunk, b * T);
    if (weights) weights.set(lossMask!.subarray(s, s + T), b * T);
  });
  return weights ? { inputs, targets, batch: B, T, weights } : { inputs, targets, batch: B, T };
}

const startsCache = new WeakMap<Uint8Array, Map<number, Int32Array>>();

/**
 * The offsets s at which a window of T tokens holds at least one scored target
 * (some lossMask[s … s+T−1] is 1), ascending. Cached per mask and T: do not mutate the mask.
 */
export function scoredWindowStarts(lossMask: Uint8Array, T: number): Int32Array {
  if (!Number.isInteger(T) || T <= 0) throw new RangeError(`scoredWindowStarts: T must be a positive integer, got ${T}`);
  let byT = startsCache.get(lossMask);
  const hit = byT?.get(T);
  if (hit) return hit;
  const out: number[] = [];
  let inWindow = 0;
  for (let i = 0; i < lossMask.length; i++) {
    inWindow += lossMask[i] ? 1 : 0;
    if (i >= T) inWindow -= lossMask[i - T] ? 1 : 0;
    if (i >= T - 1 && inWindow > 0) out.push(i - T + 1);
  }
  const starts = Int32Array.from(out);
  if (!byT) startsCache.set(lossMask, (byT = new Map()));
  byT.set(T, starts);
  return starts;
}

/**
 * A batch of `batch` windows at uniformly random offsets. With a loss mask, only among the
 * windows that hold a scored target, and the batch carries weights.
 */
export function randomBatch(tokens: Int32Array, batch: number, T: number, rng: Rng, startId: number, lossMask?: Uint8Array): WindowBatch {
  checkStart('randomBatch', startId);
  if (tokens.length < T) throw new RangeError(`randomBatch: the text has ${tokens.length} tokens, fewer than one window of ${T}`);
  if (lossMask) {
    checkLossMask('randomBatch', tokens, lossMask);
    const valid = scoredWindowStarts(lossMask, T);
    if (valid.length === 0) throw new RangeError(`randomBatch: no window of ${T} tokens holds a scored target`);
    const n = valid.length;
    return batchAt(tokens, Array.from({ length: batch }, () => valid[Math.min(n - 1, Math.floor(rng.nextFloat() * n))]!), T, startId, lossMask);
  }
  const span = tokens.length - T + 1;
  return batchAt(tokens, Array.from({ length: batch }, () => Math.min(span - 1, Math.floor(rng.nextFloat() * span))), T, startId);
}

/**
 * Consecutive windows covering `tokens` in order (the last may be shorter), grouped into
 * batches of at most `batch` windows of equal length; with weights when a loss mask is given.
 */
export function* consecutiveBatches(tokens: Int32Array, T: number, batch: number, startId: number, lossMask?: Uint8Array): Generator<WindowBatch> {
  checkStart('consecutiveBatches', startId);
  if (!Number.isInteger(T) || T <= 0) throw new RangeError(`consecutiveBatches: T must be a positive integer, got ${T}`);
  if (!Number.isInteger(batch) || batch <= 0) throw new RangeError(`consecutiveBatches: batch must be a positive integer, got ${batch}`);
  checkLossMask('consecutiveBatches', tokens, lossMask);
  const full = Math.floor(tokens.length / T);
  for (let w = 0; w < full; w += batch) {
    const starts = Array.from({ length: Math.min(batch, full - w) }, (_, i) => (w + i) * T);
    yield batchAt(tokens, starts, T, startId, lossMask);
  }
  const rest = tokens.length - full * T;
  if (rest > 0) yield batchAt(tokens, [full * T], rest, startId, lossMask);
}
