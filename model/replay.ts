/**
 * Generative replay against forgetting: a device samples text from the frozen base itself (no
 * data leaves anything — the base is shared) and mixes it into its local training tokens, so
 * LoRA learns the device's domain while staying anchored to what the base already does well.
 */
import type { FrozenBase } from './frozen-base.js';
import { sampleSequences } from './generate.js';
import type { TokenRoles } from './text-tokenizer.js';

/** Options of {@link sampleReplayPool}. */
export interface ReplayPoolOptions {
  /** The base's tokenizer (where samples start, which tokens end them). */
  readonly tokenizer: TokenRoles;
  /** Tokens to draw (at least). */
  readonly tokens: number;
  readonly seed: number;
  /** Sampling temperature. Default 1 (the base's own distribution). */
  readonly temperature?: number;
}

/** Draw at least `tokens` tokens from the base, in batches of 32 sequences. */
export function sampleReplayPool(base: FrozenBase, o: ReplayPoolOptions): Int32Array {
  if (!Number.isInteger(o.tokens) || o.tokens <= 0) throw new RangeError(`sampleReplayPool: tokens must be a positive integer, got ${o.tokens}`);
  const length = Math.min(255, base.config.seqLen - 1);
  const parts: Int32Array[] = [];
  let got = 0;
  for (let batch = 0; got < o.tokens; batch++) {
    const s = sampleSequences(base, { tokenizer: o.tokenizer, count: 32, length, temperature: o.temperature ?? 1, seed: o.seed + batch * 7919 });
    if (s.length === 0 && batch > 8) throw new Error('sampleReplayPool: the base keeps ending its samples at once');
    parts.push(s);
    got += s.length;
  }
  const out = new Int32Array(got);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Local tokens followed by replay tokens so that replay makes up `fraction` of the result
 * (cycling through the pool from `offset`). Random training windows then see replay text with
 * probability ≈ fraction.
 */
export function mixReplay(local: Int32Array, pool: Int32Array, fraction: number, offset = 0): Int32Array {
  if (!(fraction >= 0 && fraction < 1)) throw new RangeError(`mixReplay: fraction must be in [0, 1), got ${fraction}`);
  if (fraction === 0) return local;
  if (pool.length === 0) throw new RangeError('mixReplay: the replay pool is empty');
  const want = Math.round((local.length * fraction) / (1 - fraction));
  const out = new Int32Array(local.length + want);
  out.set(local);
  for (let i = 0; i < want; i++) out[local.length + i] = pool[(offset + i) % pool.length];
  return out;
}
