/** `fedtune simulate`: a whole federation on this machine (coordinator + device workers + baselines). */
import { writeFileSync } from 'node:fs';
import { DOMAIN_NAMES, type DomainName } from '../sim/domains.js';
import { isMatrixName, MATRIX_NAMES, type MatrixName } from '../model/index.js';
import { parseShardScheme, runPopulation, runSimulation, type PopulationOptions, type ShardScheme } from '../sim/index.js';
import type { RobustRule } from '../aggregators/index.js';
import { AGGREGATIONS, COMPRESSIONS, ROBUST_RULES, SERVER_OPTIMIZERS } from '../server/config-names.js';
import { CliError, num, oneOf, parse } from './args.js';

/** Usage text. */
export const SIMULATE_USAGE = `fedtune simulate [--devices N (10)] [--rounds R (4)] [--steps S (15)] [--batch B (8)] [--seq-len T (128)] [--lr X (3e-3)]
              [--rank R (4)] [--targets wq,wv,wo,w2] [--replay F (0.3)] [--domains oz,shakespeare,moby-dick,sotu,brown]
              [--chars-per-device C (60000)] [--eval-tokens N (4096)] [--no-baselines] [--seed S] [--out DIR (out/simulate)]
              [--json-summary FILE] [--compression ${COMPRESSIONS.join('|')}] [--aggregation ${AGGREGATIONS.join('|')}] [--ffa]
              [--server-opt ${SERVER_OPTIMIZERS.join('|')}] [--server-lr X]
              [--robust ${ROBUST_RULES.join('|')}] [--robust-param beta|f] [--attackers N] [--attack-scale S]
              [--privacy none|dp|dp+secagg] [--clip C (0.5)] [--noise Z (1)] [--prox MU (FedProx, 0)]
population mode (a fleet of virtual devices; --population turns it on):
              [--population N] [--cohort C (100)] [--shards natural|dirichlet:α (dirichlet:0.3)] [--mean-chars N (2000)]
              [--online P (0.8)] [--dropout P (0.05)] [--threads N] [--concurrency N (16)] [--epsilon E (calibrate z)]
              [--delta D (min(1e-6, N^-1.1))] [--no-adaptive-clip]  (--steps 1, --batch 4, --seq-len 64, --lr 5e-3 by default)`;

/** Parse the shared simulation flags (also used by the demo). */
export function simulationFlags(argv: string[]) {
  const v = parse(argv, {
    devices: { type: 'string' },
    rounds: { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    'seq-len': { type: 'string' },
    lr: { type: 'string' },
    rank: { type: 'string' },
    targets: { type: 'string' },
    replay: { type: 'string' },
    domains: { type: 'string' },
    'chars-per-device': { type: 'string' },
    'eval-tokens': { type: 'string' },
    'no-baselines': { type: 'boolean' },
    seed: { type: 'string' },
    out: { type: 'string' },
    'json-summary': { type: 'string' },
    compression: { type: 'string' },
    aggregation: { type: 'string' },
    'server-opt': { type: 'string' },
    'server-lr': { type: 'string' },
    ffa: { type: 'boolean' },
    robust: { type: 'string' },
    'robust-param': { type: 'string' },
    attackers: { type: 'string' },
    'attack-scale': { type: 'string' },
    privacy: { type: 'string' },
    clip: { type: 'string' },
    noise: { type: 'string' },
    prox: { type: 'string' },
    population: { type: 'string' },
    cohort: { type: 'string' },
    shards: { type: 'string' },
    'mean-chars': { type: 'string' },
    online: { type: 'string' },
    dropout: { type: 'string' },
    threads: { type: 'string' },
    concurrency: { type: 'string' },
    epsilon: { type: 'string' },
    delta: { type: 'string' },
    'no-adaptive-clip': { type: 'boolean' },
  });
  const robustRule = oneOf(v, 'robust', ['none', ...ROBUST_RULES] as const, 'none');
  const robustParam = num(v, 'robust-param', { min: 0 });
  const robust: RobustRule | undefined =
    robustRule === 'none' ? undefined : robustRule === 'median' ? { rule: 'median' } : robustRule === 'trimmed-mean' ? { rule: 'trimmed-mean', beta: robustParam ?? 0.1 } : { rule: robustRule, f: robustParam ?? 1 };
  const serverOpt = oneOf(v, 'server-opt', SERVER_OPTIMIZERS, 'fedavg');
  const serverLr = num(v, 'server-lr', { min: 0, minExclusive: true });
  const list = (name: string): string[] | undefined => (typeof v[name] === 'string' ? (v[name] as string).split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const targets = list('targets');
  const bad = targets?.find((t) => !isMatrixName(t));
  if (bad) throw new CliError(`--targets: unknown matrix "${bad}"; choose from ${MATRIX_NAMES.join(', ')}`);
  const domains = list('domains');
  const badDomain = domains?.find((d) => !(DOMAIN_NAMES as readonly string[]).includes(d));
  if (badDomain) throw new CliError(`--domains: unknown domain "${badDomain}"; choose from ${DOMAIN_NAMES.join(', ')}`);
  return {
    options: {
      devices: num(v, 'devices', { integer: true, min: 1 }),
      rounds: num(v, 'rounds', { integer: true, min: 1 }),
      steps: num(v, 'steps', { integer: true, min: 1 }),
      batchSize: num(v, 'batch', { integer: true, min: 1 }),
      seqLen: num(v, 'seq-len', { integer: true, min: 2 }),
      lr: num(v, 'lr', { min: 0, minExclusive: true }),
      rank: num(v, 'rank', { integer: true, min: 1 }),
      targets: targets as MatrixName[] | undefined,
      replayFraction: num(v, 'replay', { min: 0, max: 0.9 }),
      domains: domains as DomainName[] | undefined,
      maxCharsPerDevice: num(v, 'chars-per-device', { integer: true, min: 1000 }),
      evalTokens: num(v, 'eval-tokens', { integer: true, min: 16 }),
      baselines: !v['no-baselines'],
      seed: num(v, 'seed', { integer: true, min: 0 }),
      outDir: v.out as string | undefined,
      compression: oneOf(v, 'compression', COMPRESSIONS, 'none'),
      aggregation: oneOf(v, 'aggregation', AGGREGATIONS, 'fedavg'),
      serverOptimizer: { kind: serverOpt, ...(serverLr === undefined ? {} : { lr: serverLr }) },
      freezeA: Boolean(v.ffa),
      robust,
      attackers: num(v, 'attackers', { integer: true, min: 0 }),
      attackScale: num(v, 'attack-scale', { min: 0, minExclusive: true }),
      privacy: oneOf(v, 'privacy', ['none', 'dp', 'dp+secagg'] as const, 'none'),
      clipNorm: num(v, 'clip', { min: 0, minExclusive: true }),
      noiseMultiplier: num(v, 'noise', { min: 0, minExclusive: true }),
      proximalMu: num(v, 'prox', { min: 0 }),
    },
    jsonSummary: v['json-summary'] as string | undefined,
    population: populationFlags(v),
  };
}

/** The population-mode flags, when --population is given. */
function populationFlags(v: Record<string, string | boolean | undefined>): PopulationOptions | undefined {
  const population = num(v, 'population', { integer: true, min: 1 });
  if (population === undefined) return undefined;
  let shards: ShardScheme | undefined;
  try {
    shards = typeof v.shards === 'string' ? parseShardScheme(v.shards) : undefined;
  } catch {
    throw new CliError(`--shards must be "natural" or "dirichlet:α" with α > 0, got "${String(v.shards)}"`);
  }
  return {
    population,
    cohort: num(v, 'cohort', { integer: true, min: 1, max: population }),
    shards,
    meanChars: num(v, 'mean-chars', { integer: true, min: 200 }),
    online: num(v, 'online', { min: 0, max: 1, minExclusive: true }),
    dropout: num(v, 'dropout', { min: 0, max: 0.99 }),
    threads: num(v, 'threads', { integer: true, min: 1 }),
    concurrency: num(v, 'concurrency', { integer: true, min: 1 }),
    targetEpsilon: num(v, 'epsilon', { min: 0, minExclusive: true }),
    delta: num(v, 'delta', { min: 0, max: 1, minExclusive: true }),
    adaptiveClip: v['no-adaptive-clip'] ? false : undefined,
  };
}

/** Run the command. */
export async function simulateCommand(argv: string[]): Promise<void> {
  const { options, jsonSummary, population } = simulationFlags(argv);
  if (population) {
    const o = options;
    const summary = await runPopulation({
      ...population,
      rounds: o.rounds,
      steps: o.steps,
      batchSize: o.batchSize,
      seqLen: o.seqLen,
      lr: o.lr,
      rank: o.rank,
      targets: o.targets,
      domains: o.domains,
      evalTokens: o.evalTokens,
      seed: o.seed,
      privacy: o.privacy,
      clipNorm: o.clipNorm,
      noiseMultiplier: o.noiseMultiplier,
      serverOptimizer: o.serverOptimizer,
      outDir: o.outDir ?? 'out/population',
      log: (l) => process.stderr.write(`${l}\n`),
    });
    if (jsonSummary) writeFileSync(jsonSummary, `${JSON.stringify(summary, null, 1)}\n`);
    return;
  }
  if (options.devices !== undefined && options.devices < (options.domains ?? DOMAIN_NAMES).length) {
    throw new CliError(`--devices must be at least the number of domains (${(options.domains ?? DOMAIN_NAMES).length})`);
  }
  const summary = await runSimulation({ ...options, outDir: options.outDir ?? 'out/simulate', log: (l) => process.stderr.write(`${l}\n`) });
  if (jsonSummary) writeFileSync(jsonSummary, `${JSON.stringify(summary, null, 1)}\n`);
}
