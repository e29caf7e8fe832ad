/**
 * The coordinator's config file, as one zod schema: `{ "programs": [ … ] }`. It is where every
 * default lives (the `.default(…)`s below, and the few derived ones in `finish`), the source of
 * the ProgramSpec type, and where every rule is: field rules on the fields, cross-field rules in
 * `crossFieldRules` (program-rules.ts). Unknown keys anywhere are refused with a "did you mean".
 * Relative paths resolve against the file's directory (`baseDir`).
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import type { RobustRule, ServerOptimizerOptions } from '../aggregators/index.js';
import { loraConfig } from '../model/lora-config.js';
import { MATRIX_NAMES, type MatrixName } from '../model/weights.js';
import { type ConfigIssue, quoted, show, unknownKeyMessage } from './config-issues.js';
import type { ProgramEval } from './eval/eval-spec.js';
import { aggregationName, compressionName, dataFormatName, dpModeName, quantModeName, releaseSigningName, robustRuleName, samplingSchemeName, serverOptimizerKind } from './config-names.js';
import { crossFieldRules, derivedCounts } from './program-rules.js';

const ALLOWED = '\u0000allowed:';

/** A closed object: unknown keys are refused one by one (see {@link toConfigIssues}). */
function strict<S extends z.core.$ZodLooseShape>(shape: S, what = 'an object') {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, { error: (iss) => (iss.code === 'unrecognized_keys' ? `${ALLOWED}${JSON.stringify(allowed)}` : `must be ${what}, got ${show(iss.input)}`) });
}

/** A finite number passing `check`, refused as `must be WHAT, got X`. */
function num(what: string, check: (x: number) => boolean) {
  const error = (iss: { input?: unknown }): string => `must be ${what}, got ${show(iss.input)}`;
  return z.number({ error }).refine((x) => Number.isFinite(x) && check(x), { error });
}

const posInt = (x: number): boolean => Number.isInteger(x) && x > 0;
const ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A file path in the config, resolved against the config's directory. */
function path(baseDir: string, required?: string) {
  const error = (iss: { input?: unknown }): string => (iss.input === undefined && required ? `is required (${required})` : `must be a file path, got ${show(iss.input)}`);
  return z.string({ error }).min(1, { error }).transform((p) => resolve(baseDir, p));
}

/** `true` → `{}` (on with defaults), `false` → absent, an object → itself. */
const toggle = (v: unknown): unknown => (v === true ? {} : v === false ? undefined : v);

/** What devices train each round. */
const trainingSchema = strict({
  steps: num('a positive integer', posInt).default(20),
  batchSize: num('a positive integer', posInt).default(8),
  seqLen: num('an integer ≥ 2', (x) => posInt(x) && x >= 2).default(64),
  lr: num('a positive number', (x) => x > 0).default(2e-3),
  weightDecay: num('a number ≥ 0', (x) => x >= 0).default(0),
  /** The gradient's global L2 clip on devices (0 = none). */
  clipNorm: num('a number ≥ 0', (x) => x >= 0).default(1),
  /** Devices stop training after this many ms. Default: no limit. */
  timeBudgetMs: num('a positive integer', posInt).optional(),
  quant: quantModeName.default('int8'),
  replayFraction: num('a number in [0, 0.95)', (x) => x >= 0 && x < 0.95).default(0),
  replayTokens: num('a positive integer ≤ 1000000', (x) => posInt(x) && x <= 1_000_000).default(8192),
  proximalMu: num('a number ≥ 0', (x) => x >= 0).default(0),
  dataFormat: dataFormatName.default('text'),
});

/** LoRA shape (model/lora-config.ts); alpha defaults to 2 × rank. */
const loraSchema = strict({
  rank: num('a positive integer ≤ 4096', (x) => posInt(x) && x <= 4096).default(8),
  alpha: num('a positive number', (x) => x > 0).optional(),
  targets: z
    .array(z.enum(MATRIX_NAMES, { error: (iss) => `must be one of ${quoted(MATRIX_NAMES)}, got ${show(iss.input)}` }), { error: (iss) => `must be a list of ${quoted(MATRIX_NAMES)}, got ${show(iss.input)}` })
    .min(1, { error: `must name at least one of ${quoted(MATRIX_NAMES)}` })
    .default(['wq', 'wv']),
  dropout: num('a number in [0, 1)', (x) => x >= 0 && x < 1).default(0),
  freezeA: z.boolean({ error: (iss) => `must be true or false, got ${show(iss.input)}` }).default(false),
  seed: num('a safe integer', Number.isSafeInteger).default(0),
});

/** Adaptive clipping (Andrew et al. 2021); countNoiseStd defaults to cohortSize/20 under DP, 0 without. */
const adaptiveClipSchema = strict(
  {
    targetQuantile: num('a number in (0, 1)', (x) => x > 0 && x < 1).default(0.5),
    learningRate: num('a positive number', (x) => x > 0).default(0.2),
    countNoiseStd: num('a number ≥ 0', (x) => x >= 0).optional(),
  },
  'true, false or an object',
);

/** Differential privacy; population is required unless mode is "none". */
const dpSchema = strict({
  mode: dpModeName.default('none'),
  clipNorm: num('a number ≥ 0', (x) => x >= 0).default(0),
  noiseMultiplier: num('a number ≥ 0', (x) => x >= 0).default(0),
  delta: num('a number in (0, 1)', (x) => x > 0 && x < 1).default(1e-5),
  /** null or absent: no budget (Infinity). */
  epsilonBudget: num('a positive number', (x) => x > 0).nullable().optional(),
  population: num('an integer ≥ 0', (x) => Number.isInteger(x) && x >= 0).optional(),
  adaptiveClip: z.preprocess(toggle, adaptiveClipSchema.optional()),
});

/**
 * How each round picks its participants (server/sampling.ts). scheme defaults to "poisson" under
 * DP and "first-come" without; rate (poisson's q) defaults to cohortSize / dp.population;
 * selectionMs (how long a round hands out coins / gathers candidates) to min(30 s, deadline / 4).
 */
const samplingSchema = strict({
  scheme: samplingSchemeName.optional(),
  rate: num('a number in (0, 1]', (x) => x > 0 && x <= 1).optional(),
  selectionMs: num('an integer ≥ 10', (x) => Number.isInteger(x) && x >= 10).optional(),
});

/** Server optimizer hyper-parameters (aggregators/server-optimizers.ts has their defaults). */
const serverOptimizerSchema = strict({
  kind: serverOptimizerKind.default('fedavg'),
  lr: num('a positive number', (x) => x > 0).optional(),
  momentum: num('a number in [0, 1)', (x) => x >= 0 && x < 1).optional(),
  beta1: num('a number in [0, 1)', (x) => x >= 0 && x < 1).optional(),
  beta2: num('a number in [0, 1)', (x) => x >= 0 && x < 1).optional(),
  tau: num('a positive number', (x) => x > 0).optional(),
});

/** A robust rule; beta (trimmed-mean, default 0.1) or f (krum, multi-krum, bulyan, default 1). */
const robustSchema = strict({
  rule: robustRuleName,
  beta: num('a number in [0, 0.5)', (x) => x >= 0 && x < 0.5).optional(),
  f: num('an integer ≥ 0', (x) => Number.isInteger(x) && x >= 0).optional(),
});

/** Secure aggregation (SecAgg+); neighbours default O(log n). */
const secaggSchema = strict(
  {
    neighbours: num('an even integer ≥ 2', (x) => Number.isInteger(x) && x >= 2 && x % 2 === 0).optional(),
    phaseTimeoutMs: num('an integer ≥ 50', (x) => Number.isInteger(x) && x >= 50).default(30_000),
  },
  'true, false or an object',
);

/** Release signing. */
const releaseSchema = strict({
  signing: releaseSigningName.default('coordinator'),
  publicKey: z.string({ error: (iss) => `must be a string of 64 lowercase hex characters, got ${show(iss.input)}` }).optional(),
});

/** Server-side evaluation (server/eval/): held-out text or chat JSONL on the coordinator, paths relative to the config. */
function evalSchema(baseDir: string) {
  return strict({
    text: path(baseDir, 'held-out text, or chat JSONL with format "chat", on the coordinator'),
    format: dataFormatName.default('text'),
    maxTokens: num('a positive integer ≤ 10000000', (x) => posInt(x) && x <= 10_000_000).default(4096),
    context: num('an integer ≥ 2', (x) => Number.isInteger(x) && x >= 2).optional(),
    baseText: path(baseDir).optional(),
  });
}

/** The fields of one program, before cross-field rules and derived defaults. */
function programFields(baseDir: string) {
  return strict({
    id: z.string({ error: (iss) => `must be 1–64 of [A-Za-z0-9._-], got ${show(iss.input)}` }).regex(ID, { error: (iss) => `must be 1–64 of [A-Za-z0-9._-], got ${show(iss.input)}` }),
    base: path(baseDir, 'the path of the base model: a .bin or .gguf file, or a Hugging Face checkpoint directory'),
    tokenizer: path(baseDir).optional(),
    enrolmentToken: z.string({ error: 'must be a string of at least 8 characters' }).min(8, { error: 'must be a string of at least 8 characters' }),
    lora: loraSchema.prefault({}),
    training: trainingSchema.prefault({}),
    cohortSize: num('a positive integer', posInt).default(10),
    overSelect: num('a number in [1, 10]', (x) => x >= 1 && x <= 10).default(1.3),
    /** Default min(cohortSize, max(ceil(cohortSize / 2), minContributors)). */
    minUpdates: num('a positive integer', posInt).optional(),
    /** Default 2, or 10 under DP. */
    minContributors: num('a positive integer', posInt).optional(),
    maxUpdateNorm: num('a number ≥ 0 (0 = derived from the adapter size)', (x) => x >= 0).default(0),
    roundDeadlineMs: num('an integer ≥ 100', (x) => posInt(x) && x >= 100).default(600_000),
    rounds: num('a positive integer ≤ 1000000', (x) => posInt(x) && x <= 1_000_000).default(10),
    retryDelayMs: num('an integer ≥ 0', (x) => Number.isInteger(x) && x >= 0).default(2000),
    dp: dpSchema.prefault({}),
    sampling: samplingSchema.prefault({}),
    serverOptimizer: serverOptimizerSchema.prefault({}),
    compression: compressionName.default('none'),
    aggregation: aggregationName.default('fedavg'),
    robust: robustSchema.optional(),
    secagg: z.preprocess(toggle, secaggSchema.optional()),
    release: releaseSchema.prefault({}),
    eval: evalSchema(baseDir).optional(),
  });
}

/** A program's fields as parsed (defaults filled, paths resolved), before `finish`. */
export type ProgramFields = z.output<ReturnType<typeof programFields>>;

/** A program's resolved sampling: the scheme, poisson's rate q (0 for the others) and the selection window. */
export interface ProgramSampling {
  readonly scheme: 'first-come' | 'poisson' | 'fixed-cohort';
  /** Poisson: each device's inclusion probability per round (the q the accountant charges); 0 otherwise. */
  readonly rate: number;
  /** Poisson and fixed-cohort: how long after a round opens devices may still be sampled, ms. */
  readonly selectionMs: number;
}

function resolveSampling(v: ProgramFields): ProgramSampling {
  const s = v.sampling;
  const scheme = s.scheme ?? (v.dp.mode === 'none' ? 'first-come' : 'poisson');
  const population = v.dp.population ?? 0;
  const rate = scheme !== 'poisson' ? 0 : (s.rate ?? (population > 0 ? Math.min(1, v.cohortSize / population) : 1));
  const selectionMs = s.selectionMs ?? Math.min(30_000, Math.max(10, Math.floor(v.roundDeadlineMs / 4)));
  return Object.freeze({ scheme, rate, selectionMs });
}

/** The derived defaults, frozen: the validated program. */
function finish(v: ProgramFields) {
  const { minContributors, minUpdates } = derivedCounts(v);
  const d = v.dp;
  const a = d.adaptiveClip;
  const robust: RobustRule | undefined =
    v.robust === undefined ? undefined : v.robust.rule === 'median' ? { rule: 'median' } : v.robust.rule === 'trimmed-mean' ? { rule: 'trimmed-mean', beta: v.robust.beta ?? 0.1 } : { rule: v.robust.rule, f: v.robust.f ?? 1 };
  return Object.freeze({
    id: v.id,
    basePath: v.base,
    tokenizerPath: v.tokenizer ?? '',
    enrolmentToken: v.enrolmentToken,
    // loraConfig puts the targets in canonical order (the coordinator compares lora JSON across restarts)
    lora: loraConfig({ ...v.lora, targets: v.lora.targets as MatrixName[] }),
    training: Object.freeze({ ...v.training, timeBudgetMs: v.training.timeBudgetMs }),
    cohortSize: v.cohortSize,
    overSelect: v.overSelect,
    minUpdates,
    minContributors,
    maxUpdateNorm: v.maxUpdateNorm,
    roundDeadlineMs: v.roundDeadlineMs,
    rounds: v.rounds,
    retryDelayMs: v.retryDelayMs,
    dp: Object.freeze({
      mode: d.mode,
      clipNorm: d.clipNorm,
      noiseMultiplier: d.noiseMultiplier,
      delta: d.delta,
      epsilonBudget: d.epsilonBudget ?? Infinity,
      population: d.population ?? 0,
      adaptiveClip:
        a &&
        Object.freeze({ targetQuantile: a.targetQuantile, learningRate: a.learningRate, countNoiseStd: a.countNoiseStd ?? (d.mode === 'none' ? 0 : v.cohortSize / 20) }),
    }),
    sampling: resolveSampling(v),
    serverOptimizer: Object.freeze({ ...v.serverOptimizer }) as ServerOptimizerOptions,
    compression: v.compression,
    aggregation: v.aggregation,
    robust: robust && Object.freeze(robust),
    secagg: v.secagg && Object.freeze({ neighbours: v.secagg.neighbours, phaseTimeoutMs: v.secagg.phaseTimeoutMs }),
    release: Object.freeze({ signing: v.release.signing, publicKey: v.release.publicKey ?? '' }),
    ...(v.eval
      ? { eval: Object.freeze({ textPath: v.eval.text, format: v.eval.format, maxTokens: v.eval.maxTokens, context: v.eval.context, baseTextPath: v.eval.baseText ?? '' }) as ProgramEval }
      : {}),
  });
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** One program: fields, then every cross-field rule (even when some fields failed), then derived defaults. */
export function programSchema(baseDir: string) {
  return programFields(baseDir)
    .superRefine((v, ctx) => crossFieldRules(v, ctx), { when: (p) => isRecord(p.value) })
    .transform(finish);
}

/** A validated program (the schema's output). */
export type ProgramSpec = z.output<ReturnType<typeof programSchema>>;

/** The whole file: `{ "programs": [ … ] }`, at least one program, ids unique. */
export function configFileSchema(baseDir: string) {
  return strict({
    programs: z.array(programSchema(baseDir), { error: (iss) => (iss.input === undefined ? 'is required (the list of programs this coordinator runs)' : `must be a list of programs, got ${show(iss.input)}`) }).min(1, { error: 'must hold at least one program' }),
  }).superRefine(
    (v, ctx) => {
      const first = new Map<string, number>();
      (Array.isArray(v.programs) ? v.programs : []).forEach((p: unknown, i) => {
        if (!isRecord(p) || typeof p.id !== 'string') return;
        const j = first.get(p.id);
        if (j === undefined) first.set(p.id, i);
        else ctx.addIssue({ code: 'custom', path: ['programs', i, 'id'], message: `repeats ${JSON.stringify(p.id)}, the id of programs[${j}]` });
      });
    },
    { when: (p) => isRecord(p.value) },
  );
}

/** What a config file holds once validated. */
export type ConfigFile = z.output<ReturnType<typeof configFileSchema>>;

/** Zod's issues as config issues: an unknown-keys issue becomes one issue per key, with a suggestion. */
export function toConfigIssues(issues: readonly z.core.$ZodIssue[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const i of issues) {
    const path = i.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (i.code === 'unrecognized_keys' && i.message.startsWith(ALLOWED)) {
      const allowed = JSON.parse(i.message.slice(ALLOWED.length)) as string[];
      for (const k of i.keys) out.push({ path: [...path, k], message: unknownKeyMessage(k, allowed) });
    } else out.push({ path, message: i.message });
  }
  return out;
}
