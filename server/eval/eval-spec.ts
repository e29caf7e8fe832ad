/**
 * The `eval` block of a program config: held-out data the coordinator scores each new adapter on
 * (server-side evaluation), and optionally a base-domain text whose loss shows forgetting.
 *
 *   "eval": { "text": "heldout.txt", "format": "text", "maxTokens": 4096, "baseText": "general.txt" }
 *
 * The shape is one zod schema ({@link EVAL_SCHEMA}, strict: unknown keys are refused); paths are
 * relative to the config file and must exist.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

/** Formats of held-out data: plain text, or chat JSONL (loss on assistant replies only, as devices train). */
export const EVAL_FORMATS = ['text', 'chat'] as const;

/** The raw `eval` block, as a config file holds it. */
export const EVAL_SCHEMA = z.strictObject({
  /** Held-out text (or chat JSONL) on the coordinator. Required. */
  text: z.string().min(1),
  /** Default "text". */
  format: z.enum(EVAL_FORMATS).default('text'),
  /** Score at most this many tokens (from the start of the file). Default 4096. */
  maxTokens: z.number().int().positive().max(10_000_000).default(4096),
  /** Window length in tokens. Default: the program's training.seqLen (capped at the model's context). */
  context: z.number().int().min(2).optional(),
  /** A base-domain text (plain text) whose loss under each adapter shows forgetting. */
  baseText: z.string().min(1).optional(),
});

/** A validated `eval` block with absolute paths. */
export interface ProgramEval {
  readonly textPath: string;
  readonly format: (typeof EVAL_FORMATS)[number];
  readonly maxTokens: number;
  /** undefined = the program's training.seqLen. */
  readonly context?: number;
  /** '' when absent. */
  readonly baseTextPath: string;
}

/**
 * Validate a program's `eval` block (undefined when absent). `where` names the program in errors
 * (e.g. `program "oz"`); paths are resolved against `baseDir`. Throws RangeError naming the field.
 */
export function programEval(raw: unknown, where: string, baseDir: string): ProgramEval | undefined {
  if (raw === undefined) return undefined;
  const r = EVAL_SCHEMA.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const at = ['eval', ...i.path.map(String)].join('.');
    throw new RangeError(`${where}: ${at}: ${i.code === 'unrecognized_keys' ? `unknown key(s) ${(i as { keys: string[] }).keys.join(', ')}` : i.message}`);
  }
  const file = (field: 'text' | 'baseText', p: string): string => {
    const abs = resolve(baseDir, p);
    if (!existsSync(abs) || !statSync(abs).isFile()) throw new RangeError(`${where}: eval.${field} file ${abs} does not exist`);
    return abs;
  };
  return Object.freeze({
    textPath: file('text', r.data.text),
    format: r.data.format,
    maxTokens: r.data.maxTokens,
    context: r.data.context,
    baseTextPath: r.data.baseText === undefined ? '' : file('baseText', r.data.baseText),
  });
}
