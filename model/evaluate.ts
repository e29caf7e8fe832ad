/**
 * Held-out evaluation: mean next-token loss over consecutive windows, each led by the
 * tokenizer's start token (over the scored tokens only, when a loss mask comes with the tokens).
 */
import * as tf from '@tensorflow/tfjs';
import type { FrozenBase } from './frozen-base.js';
import type { LoraAdapter } from './lora.js';
import { headLoss } from './head-loss.js';
import { forwardHidden } from './transformer.js';
import { checkLossMask, consecutiveBatches, type MaskedTokens } from './windows.js';

/** Options of {@link evaluateLoss}. */
export interface EvalOptions {
  /** The token leading every window: the tokenizer's `startId` (BOS for llama2.c). */
  readonly startId: number;
  /** Window length in tokens, the start token included. Default 256 (capped at the model's context). */
  readonly context?: number;
  /** Evaluate only the first N tokens. Default: all. */
  readonly maxTokens?: number;
  readonly adapter?: LoraAdapter;
  /** Windows per forward pass. Default 8. */
  readonly batch?: number;
}

/** Result of {@link evaluateLoss}. */
export interface EvalResult {
  /** Mean negative log-likelihood, nats per predicted token. */
  readonly loss: number;
  /** Tokens predicted (with a loss mask: scored tokens). */
  readonly tokens: number;
}

/**
 * Mean next-token loss on `tokens` (encoded without BOS): the stream is cut into consecutive
 * windows of `context` tokens, each fed after `opts.startId`, and every token is predicted once.
 * Given {@link MaskedTokens}, the mean is over the tokens whose mask is 1 (windows without one are skipped).
 */
export function evaluateLoss(base: FrozenBase, data: Int32Array | MaskedTokens, opts: EvalOptions): EvalResult {
  if (opts === null || typeof opts !== 'object') throw new TypeError('evaluateLoss: opts must be an object with startId (the tokenizer\'s startId)');
  const tokens = data instanceof Int32Array ? data : data?.tokens;
  if (!(tokens instanceof Int32Array)) throw new TypeError('evaluateLoss: data must be an Int32Array or { tokens: Int32Array, lossMask: Uint8Array }');
  const lossMask = data instanceof Int32Array ? undefined : data.lossMask;
  checkLossMask('evaluateLoss', tokens, lossMask);
  const context = opts.context ?? Math.min(256, base.config.seqLen);
  const batch = opts.batch ?? 8;
  if (!Number.isInteger(context) || context < 2 || context > base.config.seqLen) {
    throw new RangeError(`evaluateLoss: context must be an integer in [2, ${base.config.seqLen}], got ${context}`);
  }
  if (!Number.isInteger(batch) || batch <= 0) throw new RangeError(`evaluateLoss: batch must be a positive integer, got ${batch}`);
  if (opts.maxTokens !== undefined && (!Number.isInteger(opts.maxTokens) || opts.maxTokens <= 0)) {
    throw new RangeError(`evaluateLoss: maxTokens must be a positive integer, got ${opts.maxTokens}`);
  }
  const stream = opts.maxTokens !== undefined ? tokens.subarray(0, opts.maxTokens) : tokens;
  const mask = lossMask && opts.maxTokens !== undefined ? lossMask.subarray(0, opts.maxTokens) : lossMask;
  if (stream.length === 0) throw new RangeError('evaluateLoss: no tokens to evaluate');
  let total = 0;
  let scored = 0;
  for (const b of consecutiveBatches(stream, context, batch, opts.startId, mask)) {
    const n = b.weights ? b.weights.reduce((a, v) => a + v, 0) : b.targets.length;
    if (n === 0) continue;
    scored += n;
    total += tf.tidy(() => {
      const { hidden } = forwardHidden(base, b.inputs, b.batch, { adapter: opts.adapter });
      return headLoss(base, hidden, b.targets, b.weights).dataSync()[0] * n;
    });
  }
  if (scored === 0) throw new RangeError('evaluateLoss: the loss mask scores no token');
  return { loss: total / scored, tokens: scored };
}
