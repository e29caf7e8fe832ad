/**
 * A program is one partner's tuning job. Its configuration is one readonly object with
 * documented defaults, validated once (a RangeError/TypeError names the program and field).
 * A coordinator config file holds `{ "programs": [ … ] }` (or a single program object);
 * relative paths in it are relative to the file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { RobustRule, ServerOptimizerKind, ServerOptimizerOptions } from '../aggregators/index.js';
import { baseFormat } from '../model/base-info.js';
import { ModelFormatError } from '../model/checkpoint.js';
import { hfBaseInfo, type HfBaseInfo } from '../model/hf-files.js';
import { loraConfig, type LoraConfig } from '../model/lora-config.js';
import { QUANT_MODES, type QuantMode } from '../model/quant.js';
import { DATA_FORMATS, type DataFormat, type DeviceTraining } from '../model/device-training.js';
import { programEval, type ProgramEval } from './eval/eval-spec.js';

/** How updates are protected by differential privacy. */
export type DpMode = 'none' | 'central' | 'local' | 'distributed';

/** DP settings of a program. */
export interface ProgramDp {
  /** Default 'none'. */
  readonly mode: DpMode;
  /** L2 bound C devices clip their update to; 0 = none told to devices (only with mode 'none'; updates are still bounded by maxUpdateNorm). Default 0. */
  readonly clipNorm: number;
  /** Noise multiplier z: noise std z·C on the sum. Default 0 (must be > 0 unless mode is 'none'). */
  readonly noiseMultiplier: number;
  /** δ of the program's (ε, δ) accounting. Default 1e-5. */
  readonly delta: number;
  /** The program may spend at most this ε; a round that would exceed it is not started. Default Infinity (no budget). */
  readonly epsilonBudget: number;
  /**
   * Users the cohort is drawn from, as the operator declares it. Required when mode is not
   * 'none' (0 otherwise). The accountant uses q = min(1, cohortSize / min(population, devices
   * enrolled)): enrolments can raise q (fewer real devices than declared), never lower it.
   */
  readonly population: number;
  /**
   * Adaptive clipping (Andrew et al. 2021): C starts at `clipNorm` and follows the
   * `targetQuantile` of update norms, C ← C·exp(−learningRate·(b̄ − γ)), from the devices'
   * noised "unclipped" reports (count noise std `countNoiseStd`, default cohort/20). Under
   * central DP the update's noise multiplier rises to (z⁻² − (2σ_b)⁻²)^(−1/2) so the pair
   * together spends what z alone would. Not with secagg.
   */
  readonly adaptiveClip?: { readonly targetQuantile: number; readonly learningRate: number; readonly countNoiseStd: number };
}

/** A validated program. */
export interface ProgramSpec {
  /** 1–64 of [A-Za-z0-9._-]. */
  readonly id: string;
  /**
   * Base model: a llama2.c checkpoint (.bin), a GGUF file (llama, qwen2, qwen3; any vocabulary)
   * or a Hugging Face checkpoint directory with its tokenizer.json (devices download it as one
   * ustar bundle of its identity files). Required.
   */
  readonly basePath: string;
  /**
   * A llama2.c tokenizer (tok*.bin): required with a llama2.c base; with a GGUF base optional (it
   * replaces the GGUF's own vocabulary, and devices download it too); not with a directory base
   * (its tokenizer.json is the tokenizer); '' when absent.
   */
  readonly tokenizerPath: string;
  /** Secret a device must present to enrol. Required, ≥ 8 characters. */
  readonly enrolmentToken: string;
  readonly lora: LoraConfig;
  /**
   * What devices train each round. Default: 20 steps, batch 8 × 64 tokens, lr 2e-3, int8 base, no
   * replay, `dataFormat` "text" (plain text; "chat": chat JSONL conversations rendered with the
   * base's chat format, loss on assistant replies only).
   */
  readonly training: DeviceTraining;
  /** Updates a round wants. Default 10. */
  readonly cohortSize: number;
  /** Devices handed work = ceil(cohortSize × overSelect), for stragglers. Default 1.3. */
  readonly overSelect: number;
  /** Fewest updates that close a round; fewer by the deadline fails it. Default max(ceil(cohortSize / 2), minContributors). */
  readonly minUpdates: number;
  /**
   * Fewest devices whose updates must be in an aggregate for it to be published as a version
   * (a round with fewer fails, the old version stays): one device's update alone is never
   * published as "the" adapter. Default 2, or 10 under DP; at most cohortSize (a cohort smaller
   * than the default must set it explicitly, 1 included).
   */
  readonly minContributors: number;
  /**
   * L2 bound on every update when dp.clipNorm is 0 (no clip norm devices are told): a longer
   * update is scaled down to it by the coordinator, so no device can move the adapter
   * arbitrarily far. Default 0 = derived from the adapter: √(values in an update), an RMS of 1
   * per value — far above what LoRA training moves, far below what overflows float32.
   */
  readonly maxUpdateNorm: number;
  /** From a round's opening to its deadline, ms. Default 600000. */
  readonly roundDeadlineMs: number;
  /** Rounds to run. Default 10. */
  readonly rounds: number;
  /** Pause before retrying a failed round, and the come-back hint to idle devices, ms. Default 2000. */
  readonly retryDelayMs: number;
  readonly dp: ProgramDp;
  /** Server optimizer over the FedAvg mean of deltas. Default plain FedAvg (η = 1). */
  readonly serverOptimizer: ServerOptimizerOptions;
  /** How updates travel: 'none' (float32), 'q8' or 'q4' (unbiased stochastic quantization). Default 'none'. */
  readonly compression: 'none' | 'q8' | 'q4';
  /**
   * How deltas become the next adapter: 'fedavg' (example-weighted mean of the flat A and B
   * values, i.e. FedIT, then the server optimizer) or 'exact-dw' (the best rank-r factors of
   * the weighted mean of the devices' products B·A). Default 'fedavg'.
   */
  readonly aggregation: 'fedavg' | 'exact-dw';
  /** A robust rule applied to the round's deltas first (not with central DP). Default none. */
  readonly robust?: RobustRule;
  /**
   * Secure aggregation (SecAgg+): the coordinator sees only the sum of the survivors' clipped
   * updates. Needs dp.clipNorm > 0, dp.mode 'none' or 'distributed', plain FedAvg, no
   * compression. `neighbours` k (default O(log n)), `phaseTimeoutMs` (default 30000).
   */
  readonly secagg?: { readonly neighbours?: number; readonly phaseTimeoutMs: number };
  /**
   * Who signs the program's adapter releases (server/releases.ts): 'coordinator' (default) — a
   * release key generated and kept in the coordinator's store; 'offline' — a partner holds the
   * key (`fedtune release keygen`), `publicKey` is its hex public half, and each version is
   * published only once its manifest is signed (`fedtune release sign`) and submitted.
   */
  readonly release: { readonly signing: 'coordinator' | 'offline'; readonly publicKey: string };
  /** Server-side evaluation of each new adapter on held-out data (server/eval/eval-spec.ts); none when absent. */
  readonly eval?: ProgramEval;
}

const ID = /^[A-Za-z0-9._-]{1,64}$/;
const OPTIMIZERS: readonly ServerOptimizerKind[] = ['fedavg', 'fedavgm', 'fedadagrad', 'fedadam', 'fedyogi'];
const DP_MODES: readonly DpMode[] = ['none', 'central', 'local', 'distributed'];

type Raw = Record<string, unknown>;

function obj(where: string, v: unknown): Raw {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TypeError(`${where} must be an object`);
  return v as Raw;
}

function num(where: string, v: unknown, dflt: number, check: (x: number) => boolean, what: string): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new RangeError(`${where} must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

const posInt = (x: number): boolean => Number.isInteger(x) && x > 0;

/**
 * A Hugging Face directory as a program's base: a readable checkpoint (config.json, weights;
 * every identity file hashed, as hfBaseInfo does) with its own tokenizer.json, and no separate
 * tokenizer. Devices download it as one ustar bundle (server/base-blob.ts).
 */
function checkHfBase(w: string, dir: string, tokenizer: unknown): void {
  if (tokenizer !== undefined) throw new RangeError(`${w}: tokenizer must not be set with a Hugging Face directory base (${dir}); its tokenizer.json is the tokenizer`);
  let info: HfBaseInfo;
  try {
    info = hfBaseInfo(dir);
  } catch (e) {
    if (e instanceof ModelFormatError) throw new RangeError(`${w}: base ${dir} is not a usable Hugging Face checkpoint: ${e.message}`);
    throw e;
  }
  if (!info.files.includes('tokenizer.json')) throw new RangeError(`${w}: base ${dir} is a Hugging Face directory without tokenizer.json; devices need the tokenizer that comes with the checkpoint`);
}

/** Validate one program object; `baseDir` resolves relative paths. */
export function programSpec(raw: unknown, baseDir = process.cwd()): ProgramSpec {
  const r = obj('program', raw);
  const id = r.id;
  if (typeof id !== 'string' || !ID.test(id)) throw new RangeError(`program.id must be 1–64 of [A-Za-z0-9._-], got ${JSON.stringify(id)}`);
  const w = `program "${id}"`;
  const path = (field: string, dflt: string): string => {
    const v = r[field];
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || v === '') throw new TypeError(`${w}: ${field} must be a file path`);
    return resolve(baseDir, v);
  };
  if (r.base === undefined) throw new RangeError(`${w}: base is required (the path of the base model: a .bin or .gguf file, or a Hugging Face checkpoint directory)`);
  const basePath = path('base', '');
  if (!existsSync(basePath)) throw new RangeError(`${w}: base ${basePath} does not exist`);
  const format = baseFormat(basePath);
  if (format === 'hf') checkHfBase(w, basePath, r.tokenizer);
  const tokenizerPath = path('tokenizer', '');
  if (tokenizerPath !== '' && !existsSync(tokenizerPath)) throw new RangeError(`${w}: tokenizer file ${tokenizerPath} does not exist`);
  if (tokenizerPath === '' && format === 'llama2c') throw new RangeError(`${w}: tokenizer is required with a llama2.c base (the tok*.bin that goes with ${basePath})`);
  const token = r.enrolmentToken;
  if (typeof token !== 'string' || token.length < 8) throw new RangeError(`${w}: enrolmentToken must be a string of at least 8 characters`);
  const lora = loraConfig(obj(`${w}: lora`, r.lora) as Partial<LoraConfig>, `${w}: lora`);
  const t = obj(`${w}: training`, r.training);
  const quant = (t.quant ?? 'int8') as QuantMode;
  if (!QUANT_MODES.includes(quant)) throw new RangeError(`${w}: training.quant must be one of ${QUANT_MODES.join(', ')}, got ${JSON.stringify(t.quant)}`);
  const dataFormat = (t.dataFormat === undefined ? 'text' : t.dataFormat) as DataFormat;
  if (!DATA_FORMATS.includes(dataFormat)) throw new RangeError(`${w}: training.dataFormat must be one of ${DATA_FORMATS.map((f) => `"${f}"`).join(', ')}, got ${JSON.stringify(t.dataFormat)}`);
  const training: DeviceTraining = {
    steps: num(`${w}: training.steps`, t.steps, 20, posInt, 'a positive integer'),
    batchSize: num(`${w}: training.batchSize`, t.batchSize, 8, posInt, 'a positive integer'),
    seqLen: num(`${w}: training.seqLen`, t.seqLen, 64, (x) => posInt(x) && x >= 2, 'an integer ≥ 2'),
    lr: num(`${w}: training.lr`, t.lr, 2e-3, (x) => x > 0, 'a positive number'),
    weightDecay: num(`${w}: training.weightDecay`, t.weightDecay, 0, (x) => x >= 0, 'a number ≥ 0'),
    clipNorm: num(`${w}: training.clipNorm`, t.clipNorm, 1, (x) => x >= 0, 'a number ≥ 0'),
    timeBudgetMs: t.timeBudgetMs === undefined ? undefined : num(`${w}: training.timeBudgetMs`, t.timeBudgetMs, 0, posInt, 'a positive integer'),
    quant,
    replayFraction: num(`${w}: training.replayFraction`, t.replayFraction, 0, (x) => x >= 0 && x < 0.95, 'a number in [0, 0.95)'),
    replayTokens: num(`${w}: training.replayTokens`, t.replayTokens, 8192, (x) => posInt(x) && x <= 1_000_000, 'a positive integer ≤ 1000000'),
    proximalMu: num(`${w}: training.proximalMu`, t.proximalMu, 0, (x) => x >= 0, 'a number ≥ 0'),
    dataFormat,
  };
  const cohortSize = num(`${w}: cohortSize`, r.cohortSize, 10, posInt, 'a positive integer');
  const overSelect = num(`${w}: overSelect`, r.overSelect, 1.3, (x) => x >= 1 && x <= 10, 'a number in [1, 10]');
  const dpMode = (obj(`${w}: dp`, r.dp).mode ?? 'none') as DpMode;
  const contributorsDefault = dpMode === 'none' ? 2 : 10;
  if (r.minContributors === undefined && contributorsDefault > cohortSize)
    throw new RangeError(`${w}: minContributors defaults to ${contributorsDefault}${dpMode === 'none' ? '' : ' under DP'}, more than cohortSize (${cohortSize}); set minContributors explicitly (1 publishes a single device's update as the adapter)`);
  const minContributors = num(`${w}: minContributors`, r.minContributors, contributorsDefault, (x) => posInt(x) && x <= cohortSize, `a positive integer ≤ cohortSize (${cohortSize})`);
  const minUpdates = num(`${w}: minUpdates`, r.minUpdates, Math.min(cohortSize, Math.max(Math.ceil(cohortSize / 2), minContributors)), (x) => posInt(x) && x <= cohortSize, `a positive integer ≤ cohortSize (${cohortSize})`);
  const maxUpdateNorm = num(`${w}: maxUpdateNorm`, r.maxUpdateNorm, 0, (x) => x >= 0, 'a number ≥ 0 (0 = derived from the adapter size)');
  const roundDeadlineMs = num(`${w}: roundDeadlineMs`, r.roundDeadlineMs, 600_000, (x) => posInt(x) && x >= 100, 'an integer ≥ 100');
  const rounds = num(`${w}: rounds`, r.rounds, 10, (x) => posInt(x) && x <= 1_000_000, 'a positive integer');
  const retryDelayMs = num(`${w}: retryDelayMs`, r.retryDelayMs, 2000, (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0');
  const d = obj(`${w}: dp`, r.dp);
  const mode = (d.mode ?? 'none') as DpMode;
  if (!DP_MODES.includes(mode)) throw new RangeError(`${w}: dp.mode must be one of ${DP_MODES.join(', ')}, got ${JSON.stringify(d.mode)}`);
  const clipNorm = num(`${w}: dp.clipNorm`, d.clipNorm, 0, (x) => x >= 0, 'a number ≥ 0');
  const noiseMultiplier = num(`${w}: dp.noiseMultiplier`, d.noiseMultiplier, 0, (x) => x >= 0, 'a number ≥ 0');
  if (mode !== 'none' && !(clipNorm > 0 && noiseMultiplier > 0)) throw new RangeError(`${w}: dp.mode "${mode}" needs dp.clipNorm > 0 and dp.noiseMultiplier > 0`);
  const delta = num(`${w}: dp.delta`, d.delta, 1e-5, (x) => x > 0 && x < 1, 'a number in (0, 1)');
  const epsilonBudget = d.epsilonBudget === undefined || d.epsilonBudget === null ? Infinity : num(`${w}: dp.epsilonBudget`, d.epsilonBudget, Infinity, (x) => x > 0, 'a positive number');
  if (mode === 'none' && Number.isFinite(epsilonBudget)) throw new RangeError(`${w}: dp.epsilonBudget needs a dp.mode other than "none"`);
  if (mode !== 'none' && d.population === undefined) throw new RangeError(`${w}: dp.mode "${mode}" needs dp.population, the number of users the cohort is drawn from (the privacy accountant cannot trust enrolments for it)`);
  const population = num(`${w}: dp.population`, d.population, 0, (x) => Number.isInteger(x) && (mode === 'none' ? x >= 0 : x >= cohortSize), mode === 'none' ? 'an integer ≥ 0' : `an integer ≥ cohortSize (${cohortSize})`);
  let adaptiveClip: ProgramDp['adaptiveClip'];
  if (d.adaptiveClip !== undefined && d.adaptiveClip !== false) {
    const a = d.adaptiveClip === true ? {} : obj(`${w}: dp.adaptiveClip`, d.adaptiveClip);
    if (!(clipNorm > 0)) throw new RangeError(`${w}: dp.adaptiveClip needs dp.clipNorm > 0 (the initial clip norm, e.g. 0.1)`);
    const cohort = typeof r.cohortSize === 'number' ? r.cohortSize : 10;
    adaptiveClip = Object.freeze({
      targetQuantile: num(`${w}: dp.adaptiveClip.targetQuantile`, a.targetQuantile, 0.5, (x) => x > 0 && x < 1, 'a number in (0, 1)'),
      learningRate: num(`${w}: dp.adaptiveClip.learningRate`, a.learningRate, 0.2, (x) => x > 0, 'a positive number'),
      countNoiseStd: num(`${w}: dp.adaptiveClip.countNoiseStd`, a.countNoiseStd, mode === 'none' ? 0 : cohort / 20, (x) => x >= 0, 'a number ≥ 0'),
    });
    if (mode === 'central' && !(adaptiveClip.countNoiseStd > 1 / (2 * noiseMultiplier))) throw new RangeError(`${w}: dp.adaptiveClip.countNoiseStd must exceed 1/(2z) = ${1 / (2 * noiseMultiplier)} so some noise is left for the update`);
    if (mode === 'local' || mode === 'distributed') throw new RangeError(`${w}: dp.adaptiveClip works with dp.mode "none" or "central"`);
  }
  const unknownDp = Object.keys(d).filter((k) => !['mode', 'clipNorm', 'noiseMultiplier', 'delta', 'epsilonBudget', 'population', 'adaptiveClip'].includes(k));
  if (unknownDp.length) throw new RangeError(`${w}: unknown dp field(s) ${unknownDp.join(', ')}`);
  const s = obj(`${w}: serverOptimizer`, r.serverOptimizer);
  const kind = (s.kind ?? 'fedavg') as ServerOptimizerKind;
  if (!OPTIMIZERS.includes(kind)) throw new RangeError(`${w}: serverOptimizer.kind must be one of ${OPTIMIZERS.join(', ')}, got ${JSON.stringify(s.kind)}`);
  const compression = (r.compression ?? 'none') as ProgramSpec['compression'];
  if (!['none', 'q8', 'q4'].includes(compression)) throw new RangeError(`${w}: compression must be one of none, q8, q4, got ${JSON.stringify(r.compression)}`);
  const aggregation = (r.aggregation ?? 'fedavg') as ProgramSpec['aggregation'];
  if (!['fedavg', 'exact-dw'].includes(aggregation)) throw new RangeError(`${w}: aggregation must be fedavg or exact-dw, got ${JSON.stringify(r.aggregation)}`);
  let robust: RobustRule | undefined;
  if (r.robust !== undefined) {
    const rb = obj(`${w}: robust`, r.robust);
    const rule = rb.rule;
    if (rule === 'median') robust = { rule };
    else if (rule === 'trimmed-mean') robust = { rule, beta: num(`${w}: robust.beta`, rb.beta, 0.1, (x) => x >= 0 && x < 0.5, 'a number in [0, 0.5)') };
    else if (rule === 'krum' || rule === 'multi-krum' || rule === 'bulyan') robust = { rule, f: num(`${w}: robust.f`, rb.f, 1, (x) => Number.isInteger(x) && x >= 0, 'an integer ≥ 0') };
    else throw new RangeError(`${w}: robust.rule must be one of median, trimmed-mean, krum, multi-krum, bulyan, got ${JSON.stringify(rule)}`);
    if (mode === 'central') throw new RangeError(`${w}: robust aggregation cannot be combined with central DP (the noise is calibrated to the plain sum)`);
  }
  if (aggregation === 'exact-dw' && mode === 'central') throw new RangeError(`${w}: aggregation "exact-dw" cannot be combined with central DP (the noise is calibrated to the plain sum)`);
  let secagg: ProgramSpec['secagg'];
  if (r.secagg !== undefined && r.secagg !== false) {
    const sa = r.secagg === true ? {} : obj(`${w}: secagg`, r.secagg);
    secagg = Object.freeze({
      neighbours: sa.neighbours === undefined ? undefined : num(`${w}: secagg.neighbours`, sa.neighbours, 0, (x) => Number.isInteger(x) && x >= 2 && x % 2 === 0, 'an even integer ≥ 2'),
      phaseTimeoutMs: num(`${w}: secagg.phaseTimeoutMs`, sa.phaseTimeoutMs, 30_000, (x) => Number.isInteger(x) && x >= 50, 'an integer ≥ 50'),
    });
    if (!(clipNorm > 0)) throw new RangeError(`${w}: secagg needs dp.clipNorm > 0 (it bounds the fixed-point encoding)`);
    if (d.adaptiveClip) throw new RangeError(`${w}: secagg cannot be combined with dp.adaptiveClip`);
    if (mode === 'central' || mode === 'local') throw new RangeError(`${w}: secagg works with dp.mode "none" or "distributed", not "${mode}"`);
    if (r.robust !== undefined || (r.aggregation ?? 'fedavg') !== 'fedavg' || (r.compression ?? 'none') !== 'none') throw new RangeError(`${w}: secagg needs plain FedAvg without robust rules or compression (the coordinator sees only the sum)`);
    if (minUpdates < 3) throw new RangeError(`${w}: secagg needs minUpdates ≥ 3`);
  }
  const rel = obj(`${w}: release`, r.release);
  const signing = (rel.signing ?? 'coordinator') as ProgramSpec['release']['signing'];
  if (signing !== 'coordinator' && signing !== 'offline') throw new RangeError(`${w}: release.signing must be "coordinator" or "offline", got ${JSON.stringify(rel.signing)}`);
  const releaseKey = rel.publicKey ?? '';
  if (signing === 'offline' && (typeof releaseKey !== 'string' || !/^[0-9a-f]{64}$/.test(releaseKey))) throw new RangeError(`${w}: release.publicKey must be the offline release key's public half (64 lowercase hex characters; see fedtune release keygen)`);
  if (signing === 'coordinator' && releaseKey !== '') throw new RangeError(`${w}: release.publicKey is only for release.signing "offline" (the coordinator makes its own key)`);
  const unknownRel = Object.keys(rel).filter((k) => k !== 'signing' && k !== 'publicKey');
  if (unknownRel.length) throw new RangeError(`${w}: unknown field(s) release.${unknownRel.join(', release.')}`);
  const evaluation = programEval(r.eval, w, baseDir);
  const known = new Set(['eval', 'release', 'secagg', 'id', 'base', 'tokenizer', 'enrolmentToken', 'lora', 'training', 'cohortSize', 'overSelect', 'minUpdates', 'minContributors', 'maxUpdateNorm', 'roundDeadlineMs', 'rounds', 'retryDelayMs', 'dp', 'serverOptimizer', 'compression', 'aggregation', 'robust']);
  const unknown = Object.keys(r).filter((k) => !known.has(k));
  if (unknown.length) throw new RangeError(`${w}: unknown field(s) ${unknown.join(', ')}`);
  return Object.freeze({
    id,
    basePath,
    tokenizerPath,
    enrolmentToken: token,
    lora,
    training: Object.freeze(training),
    cohortSize,
    overSelect,
    minUpdates,
    minContributors,
    maxUpdateNorm,
    roundDeadlineMs,
    rounds,
    retryDelayMs,
    dp: Object.freeze({ mode, clipNorm, noiseMultiplier, delta, epsilonBudget, population, adaptiveClip }),
    serverOptimizer: Object.freeze({ ...(s as object), kind }) as ServerOptimizerOptions,
    compression,
    aggregation,
    robust: robust && Object.freeze(robust),
    secagg,
    release: Object.freeze({ signing, publicKey: releaseKey as string }),
    ...(evaluation ? { eval: evaluation } : {}),
  });
}

/** Read a coordinator config file: `{ "programs": [ … ] }` or one program object. */
export function readProgramsFile(path: string): ProgramSpec[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new RangeError(`cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const list = raw && typeof raw === 'object' && Array.isArray((raw as Raw).programs) ? ((raw as Raw).programs as unknown[]) : [raw];
  if (list.length === 0) throw new RangeError(`config ${path} has no programs`);
  const specs = list.map((p) => programSpec(p, dirname(resolve(path))));
  const ids = new Set<string>();
  for (const s of specs) {
    if (ids.has(s.id)) throw new RangeError(`config ${path}: program id "${s.id}" appears twice`);
    ids.add(s.id);
  }
  return specs;
}
