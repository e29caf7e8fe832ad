/**
 * A population-mode simulation: N virtual devices (identities from one seed file, shards as
 * pointers into the partner domains' text, an availability model) enrol with a real
 * coordinator over loopback gRPC; each round every online device checks in, the coordinator's
 * Poisson coins (rate q = cohort / N) pick who works, and the sampled devices train through the
 * real Device library in worker threads (each loads the base once and lends it to the devices it
 * hosts; the devices training at the same time run as one tensor program), some drop out before
 * uploading, and the round closes once every sampled device has answered. Every new global adapter is evaluated on each domain's
 * held-out text and on TinyStories (forgetting); a status line, a JSON summary and an SVG plot
 * come out.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServerOptimizerOptions } from '../../aggregators/index.js';
import { defaultBasePath, defaultTokenizerPath, type MatrixName } from '../../model/index.js';
import { calibrateSigma } from '../../privacy/accountant/index.js';
import { programSpec, type ProgramSpec } from '../../server/index.js';
import type { DomainName } from '../domains.js';
import { lossPlotSvg, lossTable, mean, type LossRow } from '../report.js';
import { Fleet } from './fleet.js';
import { FleetProgress } from './fleet-progress.js';
import type { ShardScheme } from './shards.js';

/** Population-mode settings; every field has a default. */
export interface PopulationOptions {
  /** Virtual devices. Default 10,000. */
  readonly population?: number;
  /** Expected sampled devices per round were every device online: the coordinator's Poisson rate is q = cohort / population. Default 100. */
  readonly cohort?: number;
  /** Default 5. */
  readonly rounds?: number;
  /** Default dirichlet:0.3. */
  readonly shards?: ShardScheme;
  /** Mean characters of text per device (lognormal sizes). Default 2,000. */
  readonly meanChars?: number;
  /** σ of log(device size). Default 1. */
  readonly sizeSigma?: number;
  /** Mean online probability per round. Default 0.8. */
  readonly online?: number;
  /** Probability a working device drops out before uploading. Default 0.05. */
  readonly dropout?: number;
  readonly domains?: readonly DomainName[];
  /** Local steps per round. Default 1. */
  readonly steps?: number;
  /** Default 4. */
  readonly batchSize?: number;
  /** Default 64. */
  readonly seqLen?: number;
  /** Device learning rate. Default 5e-3. */
  readonly lr?: number;
  /** Default 4. */
  readonly rank?: number;
  /** Default wq, wv, wo, w2. */
  readonly targets?: readonly MatrixName[];
  /** Held-out tokens per domain (and of TinyStories) evaluated. Default 2048. */
  readonly evalTokens?: number;
  /** Worker threads hosting devices. Default: the machine's cores. */
  readonly threads?: number;
  /** gRPC channels per worker. Default 2. */
  readonly channels?: number;
  /** Sampled devices one worker runs at once. Default 16. */
  readonly concurrency?: number;
  /** Most devices of a worker trained together in one tensor program; 1 = each alone. Default 8. */
  readonly batch?: number;
  /** 'none', 'dp' (central noise) or 'dp+secagg' (distributed noise under secure aggregation). Default 'none'. */
  readonly privacy?: 'none' | 'dp' | 'dp+secagg';
  /** Clip norm C (the starting one under adaptive clipping). Default 0.5. */
  readonly clipNorm?: number;
  /** Noise multiplier z; default: calibrated for `targetEpsilon` over the planned rounds, else 1. */
  readonly noiseMultiplier?: number;
  /** ε to calibrate z for (at `delta`, the ledger's q, `rounds` rounds). */
  readonly targetEpsilon?: number;
  /** Default min(1e-6, 1/N^1.1). */
  readonly delta?: number;
  /** Adaptive clipping (Andrew et al. 2021) toward the median norm. Default true with central DP (the coordinator cannot combine it with SecAgg). */
  readonly adaptiveClip?: boolean;
  /** Server optimizer (with its lr). Default plain FedAvg. */
  readonly serverOptimizer?: ServerOptimizerOptions;
  /** SecAgg phase timeout, ms. Default 20,000. */
  readonly secAggPhaseTimeoutMs?: number;
  /**
   * The coordinator's data dir. Default: a fresh folder in /dev/shm when there is one (its
   * database syncs every enrolment to disk, which then dominates enrolling a population), else
   * outDir/coordinator. Removed at the end when it was made in /dev/shm.
   */
  readonly coordinatorDir?: string;
  /** Where the summary, plot, coordinator and population files go. Default out/population. */
  readonly outDir?: string;
  readonly seed?: number;
  /** Draw the status line (on a terminal). Default true. */
  readonly progress?: boolean;
  /** Line sink. Default console.log. */
  readonly log?: (line: string) => void;
}

/** One round of a population run. */
export interface PopulationRound extends LossRow {
  readonly round: number;
  readonly attempts: number;
  /** Online devices that checked in (each got the coordinator's coin). */
  readonly checkIns: number;
  readonly sampled: number;
  readonly updates: number;
  readonly dropped: number;
  readonly notSelected: number;
  readonly errors: number;
  /** Accepted updates per second, from the draw to the last device's answer. */
  readonly updatesPerSecond: number;
  /** Mean update L2 norm before clipping, and the round's clip bound. */
  readonly meanNorm: number;
  readonly clipNorm: number;
}

/** What a population run did. */
export interface PopulationSummary {
  readonly settings: Record<string, unknown>;
  readonly domains: readonly string[];
  readonly baseOnly: LossRow;
  readonly rounds: readonly PopulationRound[];
  readonly final: LossRow;
  /** base mean − final mean (nats/token). */
  readonly gain: number;
  /** TinyStories loss change of the final adapter, relative. */
  readonly forgetting: number;
  readonly epsilon: number;
  readonly delta: number;
  readonly noiseMultiplier: number;
  /** The sampling rate the ledger charges: the coordinator's Poisson rate. */
  readonly ledgerQ: number;
  readonly poissonQ: number;
  readonly enrolment: { readonly devices: number; readonly seconds: number; readonly perSecond: number };
  /** What idle devices cost: the population tables' bytes, and the RSS change building them, per 10,000 devices. */
  readonly idle: { readonly tableBytesPer10k: number; readonly rssBytesPer10k: number };
  readonly rssBytes: number;
  readonly updatesPerSecond: number;
  readonly federatedSeconds: number;
  readonly totalSeconds: number;
  readonly plotPath: string;
  readonly summaryPath: string;
}

const TOKEN = 'population-enrolment-token';

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`runPopulation: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** A population program and the sampling it is accounted with. */
export interface PopulationProgram {
  readonly spec: ProgramSpec;
  /** The coordinator's Poisson rate: cohort / population (what the ledger charges). */
  readonly q: number;
  readonly ledgerQ: number;
  readonly delta: number;
  /** Noise multiplier (0 without DP). */
  readonly z: number;
  readonly privacy: 'none' | 'dp' | 'dp+secagg';
  readonly cohort: number;
  readonly rounds: number;
}

/**
 * The program of a population run: the coordinator samples (sampling.scheme poisson at
 * q = cohort / N, with or without DP, so the baseline is sampled as the private cells are);
 * cohortSize = cohort, the fixed denominator of the DP mean; DP with z given or calibrated by the
 * accountant for `targetEpsilon` over the planned rounds at that q.
 */
export function populationProgram(id: string, options: PopulationOptions = {}): PopulationProgram {
  const N = positiveInt('population', options.population ?? 10_000);
  const cohort = positiveInt('cohort', options.cohort ?? 100);
  if (cohort > N) throw new RangeError(`runPopulation: cohort (${cohort}) must not exceed population (${N})`);
  const rounds = positiveInt('rounds', options.rounds ?? 5);
  const privacy = options.privacy ?? 'none';
  const rank = options.rank ?? 4;
  const q = cohort / N;
  const ledgerQ = q;
  const delta = options.delta ?? Math.min(1e-6, N ** -1.1);
  const dp = privacy !== 'none';
  let z = !dp ? 0 : (options.noiseMultiplier ?? (options.targetEpsilon !== undefined ? calibrateSigma(ledgerQ, rounds, options.targetEpsilon, delta) : 1));
  if (privacy === 'dp+secagg' && options.noiseMultiplier === undefined && options.targetEpsilon !== undefined) {
    // distributed noise: each device adds its share for `cohort` contributors, so the sum of n
    // survivors holds z·√(n / cohort) (the ledger charges that); size z for n a little below the
    // expected survivors (online × not dropping out), 3σ under it
    const expected = cohort * (options.online ?? 0.8) * (1 - (options.dropout ?? 0.05));
    const low = Math.max(1, expected - 3 * Math.sqrt(expected));
    z *= Math.sqrt(cohort / Math.min(cohort, low));
  }
  // (the coordinator runs adaptive clipping only with central noise: SecAgg keeps the fixed clipNorm);
  // its count noise: the coordinator's default cohort/20, but at least 1/z, so the update keeps
  // noise z_Δ = (z⁻² − (2σ_b)⁻²)^(-1/2) ≤ 1.16 z (Andrew et al. 2021) at small cohorts
  const adaptive = options.adaptiveClip ?? privacy === 'dp';
  const spec = programSpec({
    id,
    base: defaultBasePath(),
    tokenizer: defaultTokenizerPath(),
    enrolmentToken: TOKEN,
    lora: { rank, alpha: 2 * rank, targets: options.targets ?? ['wq', 'wv', 'wo', 'w2'], seed: options.seed ?? 1 },
    training: { steps: options.steps ?? 1, batchSize: options.batchSize ?? 4, seqLen: options.seqLen ?? 64, lr: options.lr ?? 5e-3, quant: 'int8', replayFraction: 0 },
    cohortSize: cohort,
    sampling: { scheme: 'poisson', rate: q, selectionMs: 23 * 3_600_000 },
    minUpdates: Math.max(1, Math.floor(cohort / 4)),
    minContributors: Math.min(2, cohort),
    overSelect: 1,
    rounds,
    // a fleet hosts several programs and runs them one after another: a round that opened while
    // the fleet was busy elsewhere must still be open when the fleet reaches it (under central DP
    // a Poisson round whose selection closed with no check-ins is released — pure noise)
    roundDeadlineMs: 24 * 3_600_000,
    retryDelayMs: 200,
    serverOptimizer: options.serverOptimizer ?? { kind: 'fedavg' },
    dp: dp ? { mode: privacy === 'dp' ? 'central' : 'distributed', clipNorm: options.clipNorm ?? 0.5, noiseMultiplier: z, delta, population: N, ...(adaptive ? { adaptiveClip: { countNoiseStd: Math.max(cohort / 20, 1 / z) } } : {}) } : {},
    ...(privacy === 'dp+secagg' ? { secagg: { phaseTimeoutMs: options.secAggPhaseTimeoutMs ?? 20_000 } } : {}),
  });
  return { spec, q, ledgerQ, delta, z, privacy, cohort, rounds };
}

/**
 * Train `program` on an enrolled fleet: its rounds one at a time, each new adapter evaluated;
 * the summary (and plot) written to `outDir`.
 */
export async function trainPopulation(fleet: Fleet, program: PopulationProgram, options: { readonly outDir: string; readonly baseOnly?: LossRow; readonly progress?: boolean; readonly log?: (line: string) => void; readonly settings?: Record<string, unknown> }): Promise<PopulationSummary> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => console.log(l));
  const { spec, rounds, q, privacy } = program;
  const dp = privacy !== 'none';
  mkdirSync(options.outDir, { recursive: true });
  const runner = fleet.running.coordinator.program(spec.id).runner;
  const baseOnly = options.baseOnly ?? fleet.evaluate('base only', spec.lora);
  const progress = new FleetProgress(rounds, options.progress ?? true);
  const note = (l: string): void => progress.note(l, log);
  const rows: PopulationRound[] = [];
  let attempts = 0;
  let trainSeconds = 0;
  let updates = 0;
  try {
    while (runner.completedRounds < rounds && !runner.done) {
      if (++attempts > 4) throw new Error(`trainPopulation: ${attempts - 1} failed attempts at round ${runner.completedRounds + 1} of ${spec.id}; giving up`);
      const r = await fleet.runRound(spec.id, progress.status);
      if (!r) break;
      trainSeconds += r.seconds;
      updates += r.counts.uploaded;
      if (r.checkInFailures) note(`round ${r.round}: ${r.checkInFailures} check-in(s) failed or were refused`);
      if (r.errors.length) note(`round ${r.round}: ${r.errors.length} device error(s), e.g. ${r.errors[0]}`);
      if (r.state !== 'COMPLETED') {
        note(`round ${r.round} (${r.roundId}) failed with ${r.counts.uploaded} of ${r.sampled} sampled devices' updates; a new draw follows`);
        continue;
      }
      progress.status.phase = 'evaluating';
      const row = fleet.evaluate(`round ${r.round}`, spec.lora, runner.current().global);
      const pr: PopulationRound = {
        ...row,
        round: r.round,
        attempts,
        checkIns: r.checkIns,
        sampled: r.sampled,
        updates: r.counts.uploaded,
        dropped: r.counts.dropped,
        notSelected: r.counts['not-selected'],
        errors: r.counts.error + r.counts.rejected,
        seconds: r.seconds,
        updatesPerSecond: r.counts.uploaded / r.seconds,
        meanNorm: r.norms.length ? mean(r.norms) : Number.NaN,
        clipNorm: r.clipNorm,
        ...(dp ? { epsilon: r.epsilonSpent } : {}),
      };
      rows.push(pr);
      attempts = 0;
      Object.assign(progress.status, { heldOutLoss: pr.mean, epsilon: dp ? r.epsilonSpent : undefined, phase: 'next round' });
      note(
        `${spec.id} round ${pr.round}: ${pr.checkIns} check-ins, ${pr.updates}/${pr.sampled} sampled devices' updates (${pr.dropped} dropped, ${pr.notSelected} not taken) in ${r.seconds.toFixed(1)} s = ${pr.updatesPerSecond.toFixed(1)} updates/s; held-out ${pr.mean.toFixed(3)}, TinyStories ${pr.tinyStories.toFixed(3)}; norm ${pr.meanNorm.toFixed(3)}, C ${pr.clipNorm.toFixed(3)}${dp ? `; ε = ${r.epsilonSpent.toFixed(2)}` : ''}`,
      );
    }
  } finally {
    progress.stop();
  }
  const final = rows.length ? { ...rows[rows.length - 1], label: 'federated' } : { ...baseOnly, label: 'federated (no round completed)' };
  const epsilon = runner.epsilonSpent();
  const plotPath = join(options.outDir, 'loss-per-round.svg');
  writeFileSync(
    plotPath,
    lossPlotSvg(`fedtune population: ${fleet.population} devices, cohort ≈ ${program.cohort}, ${privacy}${dp ? ` (ε = ${epsilon.toFixed(2)})` : ''}`, [
      { label: 'held-out (mean)', values: [baseOnly.mean, ...rows.map((r) => r.mean)], color: '#1f77b4' },
      { label: 'TinyStories', values: [baseOnly.tinyStories, ...rows.map((r) => r.tinyStories)], color: '#9467bd' },
      { label: 'base only', values: [baseOnly.mean], color: '#7f7f7f', dashed: true },
    ]),
  );
  const summaryPath = join(options.outDir, 'summary.json');
  const summary: PopulationSummary = {
    settings: { ...options.settings, program: spec.id, population: fleet.population, cohort: program.cohort, sampling: spec.sampling, rounds, training: spec.training, lora: spec.lora, privacy, dp: spec.dp, serverOptimizer: spec.serverOptimizer },
    domains: fleet.domainNames,
    baseOnly,
    rounds: rows,
    final,
    gain: baseOnly.mean - final.mean,
    forgetting: final.tinyStories / baseOnly.tinyStories - 1,
    epsilon,
    delta: program.delta,
    noiseMultiplier: program.z,
    ledgerQ: program.ledgerQ,
    poissonQ: q,
    enrolment: { devices: 0, seconds: 0, perSecond: 0 },
    idle: { tableBytesPer10k: (fleet.tableBytes() / fleet.population) * 10_000, rssBytesPer10k: (fleet.tablesRssBytes / fleet.population) * 10_000 },
    rssBytes: process.memoryUsage().rss,
    updatesPerSecond: trainSeconds > 0 ? updates / trainSeconds : 0,
    federatedSeconds: (performance.now() - t0) / 1000,
    totalSeconds: (performance.now() - t0) / 1000,
    plotPath,
    summaryPath,
  };
  writeFileSync(summaryPath, `${JSON.stringify(summary, null, 1)}\n`);
  return summary;
}

/** Run a population-mode simulation and return its summary (also written to outDir/summary.json). */
export async function runPopulation(options: PopulationOptions = {}): Promise<PopulationSummary> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => console.log(l));
  const outDir = options.outDir ?? join('out', 'population');
  const program = populationProgram('fleet', options);
  const { spec, q, z, delta, ledgerQ, privacy, rounds } = program;
  rmSync(outDir, { recursive: true, force: true });
  const fleet = await Fleet.start({ ...options, programs: [spec], outDir });
  try {
    const baseOnly = fleet.evaluate('base only', spec.lora);
    const shards = options.shards ?? { kind: 'dirichlet', alpha: 0.3 };
    log(
      `population ${fleet.population} devices (${shards.kind === 'natural' ? 'natural shards' : `dirichlet(${shards.alpha}) shards`}), the coordinator's Poisson q = ${q.toPrecision(3)} (cohort ≈ ${program.cohort} were all online), ${rounds} rounds × ${spec.training.steps} step(s) of ${spec.training.batchSize}×${spec.training.seqLen} tokens; privacy ${privacy}${privacy !== 'none' ? ` (z = ${z.toFixed(3)}, δ = ${delta.toExponential(1)}, ledger q = ${ledgerQ.toPrecision(3)}${spec.dp.adaptiveClip ? ', adaptive clipping' : ''})` : ''}`,
    );
    log(`base only: mean held-out loss ${baseOnly.mean.toFixed(3)}, TinyStories ${baseOnly.tinyStories.toFixed(3)}`);
    const enrolment = await fleet.enrol(spec.id);
    const tableBytes = fleet.tableBytes();
    log(`enrolled ${enrolment.devices} devices in ${enrolment.seconds.toFixed(1)} s (${enrolment.perSecond.toFixed(0)}/s); idle population tables ${(tableBytes / 1024).toFixed(0)} KiB (${(((tableBytes / fleet.population) * 10_000) / 1024).toFixed(0)} KiB per 10,000 devices)`);
    const s = await trainPopulation(fleet, program, { outDir, baseOnly, progress: options.progress, log, settings: { shards, meanChars: options.meanChars ?? 2000, online: options.online ?? 0.8, dropout: options.dropout ?? 0.05, seed: options.seed ?? 1 } });
    const summary: PopulationSummary = { ...s, enrolment, totalSeconds: (performance.now() - t0) / 1000 };
    writeFileSync(summary.summaryPath, `${JSON.stringify(summary, null, 1)}\n`);
    log(`\n${lossTable(fleet.domainNames, [baseOnly, ...s.rounds])}\n`);
    log(`gain ${summary.gain.toFixed(3)} nats/token, forgetting ${(summary.forgetting * 100).toFixed(1)}%, ${summary.updatesPerSecond.toFixed(1)} updates/s; summary ${summary.summaryPath}, plot ${summary.plotPath}`);
    return summary;
  } finally {
    await fleet.close();
  }
}
