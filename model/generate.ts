/** Text generation with a KV cache: the prompt in one pass, then one token per pass. */
import * as tf from '@tensorflow/tfjs';
import type { FrozenBase } from './frozen-base.js';
import type { LoraAdapter } from './lora.js';
import { cryptoRng, seededRng, type Rng } from '../random/rng.js';
import { sampleToken } from './sampling.js';
import type { TextTokenizer, TokenRoles } from './text-tokenizer.js';
import { TokenTextStream } from './token-stream.js';
import { forward, type KvCache } from './transformer.js';

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** New tokens to generate at most. Default 256. */
  readonly maxTokens?: number;
  /** 0 = greedy (default). */
  readonly temperature?: number;
  /** Nucleus sampling threshold. Default 0.9 (as run.c). */
  readonly topP?: number;
  /** Seed for sampling; without one (and without `rng`) sampling uses crypto randomness. */
  readonly seed?: number;
  readonly rng?: Rng;
  readonly adapter?: LoraAdapter;
  /** Called with each new token id and the exact bytes it adds, as it is produced. */
  readonly onToken?: (id: number, bytes: Uint8Array) => void;
  /**
   * Called with the text each new token completes (a UTF-8 character split over tokens comes
   * once, whole), and at the end with anything held back; the calls concatenate to `text`.
   */
  readonly onText?: (text: string) => void;
  /**
   * Called with the raw logits (one row of vocabSize, before temperature) each new token is
   * chosen from, before it is chosen; the array is only valid during the call.
   */
  readonly onLogits?: (logits: Float32Array) => void;
}

/** What {@link generate} returns. */
export interface Generation {
  readonly promptIds: Int32Array;
  /** New tokens (stops early at a stop token of the tokenizer, not included, or at the context limit). Special tokens among them add no text. */
  readonly ids: number[];
  /** Decoded new tokens. */
  readonly text: string;
}

function disposeCache(c: KvCache | undefined): void {
  c?.layers.forEach((l) => {
    l.k.dispose();
    l.v.dispose();
  });
}

/**
 * One forward pass that extends `cache` (disposed here) by `tokens` ([batch, T] row-major);
 * returns all logits as a plain array and the new cache (kept: dispose it later).
 */
function cachedStep(base: FrozenBase, tokens: Int32Array, batch: number, cache: KvCache | undefined, adapter?: LoraAdapter): { logits: Float32Array; cache: KvCache } {
  let logits: Float32Array = new Float32Array(0);
  let next: KvCache | undefined;
  tf.tidy(() => {
    const r = forward(base, tokens, batch, { adapter, cache, returnCache: true });
    logits = r.logits.dataSync() as Float32Array;
    r.cache?.layers.forEach((l) => {
      tf.keep(l.k);
      tf.keep(l.v);
    });
    next = r.cache;
  });
  disposeCache(cache);
  return { logits, cache: next as unknown as KvCache };
}

/**
 * Generate a continuation of `prompt`, encoded with the tokenizer's own BOS rule (BOS only when
 * `tokenizer.addBos`); an empty encoding is fed as the tokenizer's start token.
 */
export function generate(base: FrozenBase, tokenizer: TextTokenizer, prompt: string, opts: GenerateOptions = {}): Generation {
  if (typeof prompt !== 'string') throw new TypeError('generate: prompt must be a string');
  return generateFromIds(base, tokenizer, tokenizer.encode(prompt), opts);
}

/**
 * Generate a continuation of token ids fed exactly as given (e.g. a rendered chat); an empty
 * array is fed as the tokenizer's start token. `promptIds` of the result is what was given.
 */
export function generateFromIds(base: FrozenBase, tokenizer: TextTokenizer, promptIds: Int32Array, opts: GenerateOptions = {}): Generation {
  const maxTokens = opts.maxTokens ?? 256;
  const temperature = opts.temperature ?? 0;
  const topP = opts.topP ?? 0.9;
  if (!(promptIds instanceof Int32Array)) throw new TypeError('generateFromIds: promptIds must be an Int32Array');
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new RangeError(`generate: maxTokens must be a non-negative integer, got ${maxTokens}`);
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`generate: temperature must be ≥ 0, got ${temperature}`);
  if (!(topP >= 0 && topP <= 1)) throw new RangeError(`generate: topP must be in [0, 1], got ${topP}`);
  const V = base.config.vocabSize;
  for (const id of promptIds) if (id < 0 || id >= V) throw new RangeError(`generateFromIds: promptIds holds ${id}, outside the vocabulary [0, ${V})`);
  const rng = opts.rng ?? (opts.seed !== undefined ? seededRng(opts.seed) : cryptoRng());
  if (promptIds.length > base.config.seqLen) throw new RangeError(`generate: the prompt has ${promptIds.length} tokens, more than the model's context of ${base.config.seqLen}`);
  const ids: number[] = [];
  let cache: KvCache | undefined;
  let input = promptIds.length > 0 ? promptIds : Int32Array.of(tokenizer.startId);
  const stream = new TokenTextStream(tokenizer, input[input.length - 1]);
  // special tokens are control, not text: they print as nothing, as llama.cpp prints them
  const special = new Set(tokenizer.specialTokens().map((t) => t.id));
  let text = '';
  try {
    while (ids.length < maxTokens && (cache?.length ?? 0) + input.length <= base.config.seqLen) {
      const out = cachedStep(base, input, 1, cache, opts.adapter);
      cache = out.cache;
      const row = out.logits.subarray((input.length - 1) * V);
      opts.onLogits?.(row);
      const tok = sampleToken(row, { temperature, topP }, rng);
      if (tokenizer.isStop(tok)) break;
      ids.push(tok);
      const piece = special.has(tok) ? { text: '', bytes: new Uint8Array(0) } : stream.push(tok);
      text += piece.text;
      opts.onToken?.(tok, piece.bytes);
      if (piece.text) opts.onText?.(piece.text);
      input = Int32Array.of(tok);
    }
  } finally {
    disposeCache(cache);
  }
  const rest = stream.flush();
  text += rest;
  if (rest) opts.onText?.(rest);
  return { promptIds, ids, text };
}

/** Logits [T, vocab] at every position of `ids` (one batch row), as plain arrays. */
export function logitsFor(base: FrozenBase, ids: Int32Array, adapter?: LoraAdapter): Float32Array[] {
  const V = base.config.vocabSize;
  const flat = tf.tidy(() => forward(base, ids, 1, { adapter }).logits.dataSync() as Float32Array);
  return Array.from({ length: ids.length }, (_, t) => flat.slice(t * V, (t + 1) * V));
}

/** Options of {@link sampleSequences}. */
export interface SampleOptions {
  /** Where sequences start (`startId`) and which tokens end them (`isStop`): the base's tokenizer. */
  readonly tokenizer: TokenRoles;
  /** Sequences to draw (one batch). */
  readonly count: number;
  /** New tokens per sequence (each starts after the start token). */
  readonly length: number;
  /** Default 1. */
  readonly temperature?: number;
  readonly seed: number;
}

/**
 * Draw `count` sequences from the model in one batch with a KV cache, each started from the
 * tokenizer's `startId`; returns their tokens concatenated (without the start token), stopping
 * each at a stop token (not included). Used as data-free calibration text: the base's own
 * distribution.
 */
export function sampleSequences(base: FrozenBase, opts: SampleOptions): Int32Array {
  const { count, length, tokenizer } = opts;
  if (!tokenizer || typeof tokenizer.isStop !== 'function' || !Number.isInteger(tokenizer.startId)) {
    throw new TypeError('sampleSequences: opts.tokenizer must give startId and isStop (the base\'s tokenizer)');
  }
  if (!Number.isInteger(count) || count <= 0) throw new RangeError(`sampleSequences: count must be a positive integer, got ${count}`);
  if (!Number.isInteger(length) || length <= 0 || length >= base.config.seqLen) {
    throw new RangeError(`sampleSequences: length must be an integer in [1, ${base.config.seqLen}), got ${length}`);
  }
  const temperature = opts.temperature ?? 1;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new RangeError(`sampleSequences: temperature must be ≥ 0, got ${temperature}`);
  const rng = seededRng(opts.seed);
  const V = base.config.vocabSize;
  const seqs: number[][] = Array.from({ length: count }, () => []);
  const done = new Uint8Array(count);
  let input = new Int32Array(count).fill(tokenizer.startId);
  let cache: KvCache | undefined;
  try {
    for (let t = 0; t < length && !done.every(Boolean); t++) {
      const out = cachedStep(base, input, count, cache);
      cache = out.cache;
      const rows = out.logits;
      input = new Int32Array(count);
      for (let b = 0; b < count; b++) {
        const tok = sampleToken(rows.subarray(b * V, (b + 1) * V), { temperature, topP: 1 }, rng);
        input[b] = tok;
        if (done[b]) continue;
        if (tokenizer.isStop(tok)) done[b] = 1;
        else seqs[b].push(tok);
      }
    }
  } finally {
    disposeCache(cache);
  }
  return Int32Array.from(seqs.flat());
}
