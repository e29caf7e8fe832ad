/** LoRA hyper-parameters: one readonly object, validated once. */
import { isMatrixName, MATRIX_NAMES, type MatrixName } from './weights.js';

/** How an adapter is shaped and initialised. */
export interface LoraConfig {
  /** Rank r of each A [r, in] / B [out, r] pair. Default 8. */
  readonly rank: number;
  /** Scale numerator: the update is (alpha / rank) · B A x. Default 2 × rank. */
  readonly alpha: number;
  /** Block matrices that get an adapter. Default ['wq', 'wv']. */
  readonly targets: readonly MatrixName[];
  /** Dropout on the adapter's input during training, in [0, 1). Default 0. */
  readonly dropout: number;
  /** FFA-LoRA: A stays at its seeded initialisation and only B trains. Default false. */
  readonly freezeA: boolean;
  /** Seed for A's initialisation (shared by a program so every device draws the same A). Default 0. */
  readonly seed: number;
}

/** Defaults for every {@link LoraConfig} field. */
export const DEFAULT_LORA_CONFIG: LoraConfig = Object.freeze({
  rank: 8,
  alpha: 16,
  targets: Object.freeze(['wq', 'wv'] as MatrixName[]),
  dropout: 0,
  freezeA: false,
  seed: 0,
});

/** Fill defaults and validate; throws TypeError/RangeError naming the field. */
export function loraConfig(partial: Partial<LoraConfig> = {}, where = 'loraConfig'): LoraConfig {
  if (partial === null || typeof partial !== 'object') throw new TypeError(`${where}: options must be an object`);
  const rank = partial.rank ?? DEFAULT_LORA_CONFIG.rank;
  if (!Number.isInteger(rank) || rank <= 0 || rank > 4096) throw new RangeError(`${where}: rank must be a positive integer, got ${rank}`);
  const alpha = partial.alpha ?? 2 * rank;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) throw new RangeError(`${where}: alpha must be a positive number, got ${alpha}`);
  const targets = partial.targets ?? DEFAULT_LORA_CONFIG.targets;
  if (!Array.isArray(targets) || targets.length === 0) throw new RangeError(`${where}: targets must be a non-empty list of ${MATRIX_NAMES.join(', ')}`);
  for (const t of targets) {
    if (!isMatrixName(t)) throw new RangeError(`${where}: unknown target "${t}"; choose from ${MATRIX_NAMES.join(', ')}`);
  }
  if (new Set(targets).size !== targets.length) throw new RangeError(`${where}: targets repeat a matrix: ${targets.join(',')}`);
  const dropout = partial.dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) throw new RangeError(`${where}: dropout must be in [0, 1), got ${dropout}`);
  const freezeA = partial.freezeA ?? false;
  if (typeof freezeA !== 'boolean') throw new TypeError(`${where}: freezeA must be a boolean`);
  const seed = partial.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new RangeError(`${where}: seed must be a safe integer, got ${seed}`);
  // canonical target order, so equal configs serialise equally
  const ordered = MATRIX_NAMES.filter((m) => targets.includes(m));
  return Object.freeze({ rank, alpha, targets: Object.freeze(ordered), dropout, freezeA, seed });
}
