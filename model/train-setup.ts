/**
 * What a training run is, resolved once from the caller's options: every default filled in and
 * every value checked, the step count, the token stream with its loss mask, and the random
 * source for batch sampling and dropout. Shared by {@link LocalTrainer} (one adapter) and
 * CohortTrainer (several devices' adapters in one tensor program), so both sample the same
 * batches and run the same schedule for the same options.
 */
import { cryptoRng, seededRng, type Rng } from '../random/rng.js';
import type { FrozenBase } from './frozen-base.js';
import type { LoraAdapter } from './lora.js';
import { CHECKPOINT_ABOVE_BYTES, activationBytes, type TrainOptions } from './trainer.js';
import { checkLossMask, scoredWindowStarts, type MaskedTokens } from './windows.js';

/** The optimizer and schedule settings of a run, every default filled in. */
export interface ResolvedTrainOptions {
  readonly steps: number;
  readonly batchSize: number;
  readonly seqLen: number;
  readonly lr: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly clipNorm: number;
  readonly timeBudgetMs?: number;
  readonly proximalMu: number;
  readonly checkpoint: boolean;
}

/** A resolved run: options, step count, data and randomness. */
export interface TrainSetup {
  readonly o: ResolvedTrainOptions;
  readonly startId: number;
  readonly rng: Rng;
  readonly totalSteps: number;
  readonly tokens: Int32Array;
  readonly lossMask?: Uint8Array;
}

function positive(where: string, name: string, v: number, integer: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new RangeError(`${where}: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  }
  return v;
}

/**
 * Check and resolve the options of training `adapter` over `base` on `data` (a token stream, or
 * one with its loss mask). Throws TypeError/RangeError naming `where` and the argument.
 */
export function resolveTraining(where: string, base: FrozenBase, adapter: LoraAdapter, data: Int32Array | MaskedTokens, options: TrainOptions): TrainSetup {
  const w = where;
  const tokens = data instanceof Int32Array ? data : data?.tokens;
  if (!(tokens instanceof Int32Array)) throw new TypeError(`${w}: data must be an Int32Array or { tokens: Int32Array, lossMask: Uint8Array }`);
  let lossMask: Uint8Array | undefined;
  if (!(data instanceof Int32Array)) {
    checkLossMask(w, tokens, data.lossMask);
    lossMask = data.lossMask;
  }
  if (options === null || typeof options !== 'object') throw new TypeError(`${w}: options must be an object with startId (the tokenizer's startId)`);
  if (!Number.isInteger(options.startId) || options.startId < 0 || options.startId >= base.config.vocabSize) {
    throw new RangeError(`${w}: startId must be a token id in [0, ${base.config.vocabSize}), got ${options.startId}`);
  }
  const seqLen = positive(w, 'seqLen', options.seqLen ?? Math.min(128, base.config.seqLen), true);
  if (seqLen > base.config.seqLen) throw new RangeError(`${w}: seqLen ${seqLen} exceeds the model's context of ${base.config.seqLen}`);
  const batchSize = positive(w, 'batchSize', options.batchSize ?? 8, true);
  if (tokens.length < seqLen) throw new RangeError(`${w}: the text has ${tokens.length} tokens, fewer than one window of ${seqLen}`);
  if (adapter.baseSha256 !== base.sha256) throw new RangeError(`${w}: the adapter was made for another base model`);
  if (lossMask && scoredWindowStarts(lossMask, seqLen).length === 0) throw new RangeError(`${w}: the loss mask scores no token`);
  const o: ResolvedTrainOptions = {
    steps: positive(w, 'steps', options.steps ?? 50, true),
    batchSize,
    seqLen,
    lr: positive(w, 'lr', options.lr ?? 2e-3, false),
    weightDecay: options.weightDecay ?? 0,
    beta1: options.beta1 ?? 0.9,
    beta2: options.beta2 ?? 0.999,
    eps: positive(w, 'eps', options.eps ?? 1e-8, false),
    clipNorm: options.clipNorm ?? 1,
    timeBudgetMs: options.timeBudgetMs === undefined ? undefined : positive(w, 'timeBudgetMs', options.timeBudgetMs, false),
    proximalMu: options.proximalMu ?? 0,
    checkpoint: options.checkpoint ?? activationBytes(base.config, options.batchSize ?? 8, options.seqLen ?? Math.min(128, base.config.seqLen)) > CHECKPOINT_ABOVE_BYTES,
  };
  if (!(o.proximalMu >= 0) || !Number.isFinite(o.proximalMu)) throw new RangeError(`${w}: proximalMu must be a finite number ≥ 0, got ${o.proximalMu}`);
  if (!(o.weightDecay >= 0)) throw new RangeError(`${w}: weightDecay must be ≥ 0, got ${o.weightDecay}`);
  if (!(o.clipNorm >= 0)) throw new RangeError(`${w}: clipNorm must be ≥ 0, got ${o.clipNorm}`);
  for (const k of ['beta1', 'beta2'] as const) {
    if (!(o[k] >= 0 && o[k] < 1)) throw new RangeError(`${w}: ${k} must be in [0, 1), got ${o[k]}`);
  }
  let totalSteps: number;
  if (options.epochs === undefined) totalSteps = o.steps;
  else {
    const epochs = positive(w, 'epochs', options.epochs, false);
    totalSteps = Math.max(1, Math.ceil((epochs * tokens.length) / (batchSize * seqLen)));
  }
  const rng = options.rng ?? (options.seed !== undefined ? seededRng(options.seed) : cryptoRng());
  return { o, startId: options.startId, rng, totalSteps, tokens, lossMask };
}
