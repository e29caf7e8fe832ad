/**
 * A population-mode simulation: N virtual devices (identities from one seed file, shards as
 * pointers into the partner domains' text, an availability model) enrol with a real
 * coordinator over loopback gRPC; each round a Poisson sample of the online devices checks in
 * and trains through the real Device library in worker threads (each loads the base once and
 * lends it to the devices it hosts), some drop out before uploading, and the round closes once
 * every sampled device has answered. Every new global adapter is evaluated on each domain's
 * held-out text and on TinyStories (forgetting); a status line, a JSON summary and an SVG plot
 * come out.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ServerOptimizerOptions } from '../../aggregators/index.js';
import { adapterTensorsFromFlat, defaultBasePath, defaultTokenizerPath, evaluateLoss, initBackend, LoraAdapter, openBase, type MatrixName } from '../../model/index.js';
import { calibrateSigma } from '../../privacy/accountant/index.js';
import { seededRng } from '../../random/rng.js';
import { programSpec, startCoordinator, type ProgramSpec } from '../../server/index.js';
import { DOMAIN_NAMES, loadDomains, loadTinyStoriesHeldOut, type DomainName } from '../domains.js';
import { lossPlotSvg, lossTable, mean, type LossRow } from '../report.js';
import { buildAvailability, drawRound } from './availability.js';
import { FleetProgress } from './fleet-progress.js';
import type { FleetReply, FleetRequest, FleetTask, FleetWorkerData } from './fleet-worker.js';
import { PopulationIdentities } from './identities.js';
import { buildShards, type ShardScheme } from './shards.js';

/** Population-mode settings; every field has a default. */
export interface PopulationOptions {
  /** Virtual devices. Default 10,000. */
  readonly population?: number;
  /** Expected devices per round: the Poisson sampling rate is q = cohort / population. Default 100. */
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
  /** Devices one worker runs at once. Default 4. */
  readonly concurrency?: number;
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
  /** Adaptive clipping (Andrew et al. 2021) toward the median norm. Default true under DP. */
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
  /** The sampling rate the ledger charges (≥ the Poisson rate used). */
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
const PROGRAM = 'fleet';

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`runPopulation: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** Run a population-mode simulation and return its summary (also written to outDir/summary.json). */
export async function runPopulation(options: PopulationOptions = {}): Promise<PopulationSummary> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => console.log(l));
  const N = positiveInt('population', options.population ?? 10_000);
  const cohort = positiveInt('cohort', options.cohort ?? 100);
  if (cohort > N) throw new RangeError(`runPopulation: cohort (${cohort}) must not exceed population (${N})`);
  const rounds = positiveInt('rounds', options.rounds ?? 5);
  const evalTokens = positiveInt('evalTokens', options.evalTokens ?? 2048);
  const threads = positiveInt('threads', options.threads ?? availableParallelism());
  const seed = options.seed ?? 1;
  const names = options.domains ?? DOMAIN_NAMES;
  const outDir = options.outDir ?? join('out', 'population');
  const privacy = options.privacy ?? 'none';
  const rank = options.rank ?? 4;
  // Poisson rate, and the cohort cap the coordinator holds: expected + 3σ, so the cap almost
  // never truncates a draw; the ledger charges q = cap / N, an upper bound on the real rate
  const q = cohort / N;
  const cap = Math.min(N, Math.ceil(cohort + 3 * Math.sqrt(cohort)));
  const ledgerQ = cap / N;
  const delta = options.delta ?? Math.min(1e-6, N ** -1.1);
  const dp = privacy !== 'none';
  const z = options.noiseMultiplier ?? (dp && options.targetEpsilon !== undefined ? calibrateSigma(ledgerQ, rounds, options.targetEpsilon, delta) : 1);
  const adaptive = options.adaptiveClip ?? dp;
  const program: ProgramSpec = programSpec({
    id: PROGRAM,
    base: defaultBasePath(),
    tokenizer: defaultTokenizerPath(),
    enrolmentToken: TOKEN,
    lora: { rank, alpha: 2 * rank, targets: options.targets ?? ['wq', 'wv', 'wo', 'w2'], seed },
    training: { steps: options.steps ?? 1, batchSize: options.batchSize ?? 4, seqLen: options.seqLen ?? 64, lr: options.lr ?? 5e-3, quant: 'int8', replayFraction: 0 },
    cohortSize: cap,
    minUpdates: Math.max(1, Math.floor(cohort / 4)),
    minContributors: Math.min(2, cohort),
    overSelect: 1,
    rounds,
    roundDeadlineMs: 30 * 60_000,
    retryDelayMs: 200,
    serverOptimizer: options.serverOptimizer ?? { kind: 'fedavg' },
    dp: dp ? { mode: privacy === 'dp' ? 'central' : 'distributed', clipNorm: options.clipNorm ?? 0.5, noiseMultiplier: z, delta, population: N, ...(adaptive ? { adaptiveClip: {} } : {}) } : {},
    ...(privacy === 'dp+secagg' ? { secagg: { phaseTimeoutMs: options.secAggPhaseTimeoutMs ?? 20_000 } } : {}),
  });

  // text: each domain's training text (the shards point into it) and its held-out text
  const domains = loadDomains({ devicesPerDomain: 1, domains: names, heldOutChars: 20_000, seed });
  const domainTexts = domains.map((d) => d.devices[0].text);
  const domainNames = domains.map((d) => d.name);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const rss0 = process.memoryUsage().rss;
  const shards = buildShards({ domainLengths: domainTexts.map((t) => t.length), devices: N, scheme: options.shards ?? { kind: 'dirichlet', alpha: 0.3 }, meanChars: options.meanChars, sizeSigma: options.sizeSigma, seed });
  const availability = buildAvailability({ devices: N, online: options.online, dropout: options.dropout, seed: seed + 1 });
  const identities = new PopulationIdentities(join(outDir, 'population'), N);
  const rssTables = process.memoryUsage().rss;

  await initBackend();
  const { base, tokenizer } = openBase(program.basePath, program.training.quant, { tokenizerPath: program.tokenizerPath, seed: 1 });
  const held = domains.map((d) => tokenizer.encode(d.heldOut, { bos: false }).subarray(0, evalTokens));
  const stories = tokenizer.encode(loadTinyStoriesHeldOut(40_000), { bos: false }).subarray(0, evalTokens);
  const evaluate = (label: string, flat?: Float32Array): LossRow => {
    const adapter = flat ? LoraAdapter.fromTensors(base.config, base.sha256, program.lora, adapterTensorsFromFlat(base.config, program.lora, flat)) : undefined;
    try {
      const ds = held.map((h) => evaluateLoss(base, h, { startId: tokenizer.startId, adapter, context: 256 }).loss);
      return { label, domains: ds, mean: mean(ds), tinyStories: evaluateLoss(base, stories, { startId: tokenizer.startId, adapter, context: 256 }).loss };
    } finally {
      adapter?.dispose();
    }
  };
  const baseOnly = evaluate('base only');
  log(`population ${N} devices (${options.shards?.kind === 'natural' ? 'natural shards' : `dirichlet(${options.shards?.kind === 'dirichlet' ? options.shards.alpha : 0.3}) shards`}), Poisson q = ${q.toPrecision(3)} (cohort ≈ ${cohort}, cap ${cap}), ${rounds} rounds × ${program.training.steps} step(s) of ${program.training.batchSize}×${program.training.seqLen} tokens; privacy ${privacy}${dp ? ` (z = ${z.toFixed(3)}, δ = ${delta.toExponential(1)}, ledger q = ${ledgerQ.toPrecision(3)}${adaptive ? ', adaptive clipping' : ''})` : ''}`);
  log(`base only: mean held-out loss ${baseOnly.mean.toFixed(3)}, TinyStories ${baseOnly.tinyStories.toFixed(3)}`);

  const shm = options.coordinatorDir === undefined && existsSync('/dev/shm') ? mkdtempSync('/dev/shm/fedtune-population-') : undefined;
  const coordinatorDir = options.coordinatorDir ?? shm ?? join(outDir, 'coordinator');
  const running = await startCoordinator({
    dataDir: coordinatorDir,
    programs: [program],
    port: 0,
    // every simulated device enrols from 127.0.0.1: the wrong-token throttle is per address, so
    // the simulation allows its whole population explicitly (right tokens are never throttled)
    enrolThrottle: { perPeer: Math.max(10, N), global: Math.max(200, N) },
  });
  const state = running.coordinator.program(PROGRAM);
  const runner = state.runner;
  const workers: Worker[] = [];
  const progress = new FleetProgress(rounds, options.progress ?? true);
  const note = (l: string): void => progress.note(l, log);
  try {
    // workers: each opens the base once
    const handlers = new Set<(w: number, m: FleetReply) => void>();
    const failures: string[] = [];
    const ready = await Promise.all(
      Array.from({ length: threads }, (_, w) => {
        const data: FleetWorkerData = {
          worker: w,
          address: running.address,
          programId: PROGRAM,
          enrolmentToken: TOKEN,
          releaseKey: Buffer.from(state.releases.key.publicKey).toString('hex'),
          master: Buffer.from(identities.master).toString('hex'),
          basePath: program.basePath,
          tokenizerPath: program.tokenizerPath ?? '',
          quant: program.training.quant,
          domainTexts,
          shards: { segStart: shards.segStart, segDomain: shards.segDomain, segOffset: shards.segOffset, segLength: shards.segLength },
          scratchDir: join(outDir, 'scratch'),
          channels: options.channels ?? 2,
          concurrency: options.concurrency ?? 4,
          seed,
        };
        const worker = new Worker(new URL('./fleet-worker.js', import.meta.url), { workerData: data });
        workers.push(worker);
        return new Promise<string>((resolve, reject) => {
          worker.on('message', (m: FleetReply) => {
            if (m.type === 'ready') resolve(m.baseSha256);
            else if (m.type === 'error') failures.push(`worker ${w}: ${m.message}`);
            for (const h of handlers) h(w, m);
          });
          worker.on('error', (e) => {
            failures.push(`worker ${w}: ${e.message}`);
            reject(e);
          });
        });
      }),
    );
    if (ready.some((s) => s !== state.base.blob.sha256)) note(`note: the workers' base identity differs from the program's base blob; devices will download the base`);
    const request = (w: number, m: FleetRequest): void => workers[w].postMessage(m);
    const until = <T>(pick: (w: number, m: FleetReply) => T | undefined, count: number, onEach?: (v: T) => void): Promise<T[]> =>
      new Promise((resolve, reject) => {
        const got: T[] = [];
        const h = (w: number, m: FleetReply): void => {
          if (m.type === 'error') {
            handlers.delete(h);
            reject(new Error(failures.join('; ')));
            return;
          }
          const v = pick(w, m);
          if (v === undefined) return;
          got.push(v);
          onEach?.(v);
          if (got.length === count) {
            handlers.delete(h);
            resolve(got);
          }
        };
        handlers.add(h);
        if (count === 0) {
          handlers.delete(h);
          resolve(got);
        }
      });

    // enrolment: every device, through Device.enroll in the workers
    progress.status.phase = 'enrolling';
    const tE = performance.now();
    const todo = Array.from({ length: N }, (_, i) => i).filter((i) => !identities.deviceId(i));
    const enrolled = until((_, m) => (m.type === 'enrolled' ? m : undefined), threads);
    for (let w = 0; w < threads; w++) request(w, { type: 'enrol', indices: todo.filter((i) => i % threads === w) });
    const replies = await enrolled;
    const boxKey = replies.find((r) => r.programBoxPublicKey)?.programBoxPublicKey ?? '';
    identities.record(replies.flatMap((r) => r.entries));
    const enrolSeconds = (performance.now() - tE) / 1000;
    const tableBytes = shards.bytes + availability.online.byteLength + N * (8 + 2 * 28); // + one device id string each
    note(`enrolled ${identities.enrolledCount()} devices in ${enrolSeconds.toFixed(1)} s (${(todo.length / enrolSeconds).toFixed(0)}/s); idle population tables ${(tableBytes / 1024).toFixed(0)} KiB (${((tableBytes / N) * 10_000 / 1024).toFixed(0)} KiB per 10,000 devices)`);

    // rounds
    const rng = seededRng(seed * 7919 + 3);
    const rows: PopulationRound[] = [];
    const tFed = performance.now();
    let attempts = 0;
    let trainSecondsAll = 0;
    let updatesAll = 0;
    const closed = new Map<string, (e: { state: string; epsilonSpent: number; clipNorm: number }) => void>();
    const sub = runner.events$.subscribe((e) => {
      if (e.state === 'COMPLETED' || e.state === 'FAILED') closed.get(e.roundId)?.(e);
    });
    try {
      while (runner.completedRounds < rounds && !runner.done) {
        if (attempts++ > rounds * 4) throw new Error(`runPopulation: ${attempts - 1} round attempts for ${rounds} rounds; giving up`);
        let open = runner.openRound;
        for (let waited = 0; !open && !runner.done; waited += 25) {
          if (waited > 120_000) throw new Error(`runPopulation: no round opened within 2 minutes (${runner.status().reason})`);
          await new Promise((r) => setTimeout(r, 25));
          open = runner.openRound;
        }
        if (!open) break;
        const roundId = open.id;
        const ended = new Promise<{ state: string; epsilonSpent: number; clipNorm: number }>((resolve) => closed.set(roundId, resolve));
        const draws = drawRound(rng, q, availability);
        const tasks: FleetTask[][] = Array.from({ length: threads }, () => []);
        draws.forEach((d, k) => tasks[k % threads].push({ index: d.index, deviceId: identities.deviceId(d.index), dropsOut: d.dropsOut }));
        Object.assign(progress.status, { round: open.number, sampled: draws.length, done: 0, dropped: 0, phase: 'training' });
        const tR = performance.now();
        const counts = { uploaded: 0, dropped: 0, 'not-selected': 0, rejected: 0, error: 0 };
        const norms: number[] = [];
        const errors: string[] = [];
        const results = until(
          (_, m) => (m.type === 'task' && m.round === open.number ? m : undefined),
          draws.length,
          (m) => {
            counts[m.outcome]++;
            if (m.outcome === 'uploaded') {
              progress.status.done++;
              norms.push(m.updateNorm);
            } else progress.status.dropped++;
            if (m.outcome === 'error' || m.outcome === 'rejected') errors.push(`device ${m.index}: ${m.message}`);
            const s = (performance.now() - tR) / 1000;
            progress.status.updatesPerSecond = counts.uploaded / s;
          },
        );
        for (let w = 0; w < threads; w++) request(w, { type: 'round', round: open.number, programBoxPublicKey: boxKey, tasks: tasks[w] });
        await results;
        const seconds = (performance.now() - tR) / 1000;
        trainSecondsAll += seconds;
        updatesAll += counts.uploaded;
        if (errors.length) note(`round ${open.number}: ${errors.length} device error(s), e.g. ${errors[0]}`);
        progress.status.phase = 'aggregating';
        if (runner.openRound?.id === roundId && !runner.closeNow('every sampled device answered')) runner.closeSelection();
        const e = await ended;
        closed.delete(roundId);
        if (e.state !== 'COMPLETED') {
          note(`round ${open.number} (${roundId}) failed with ${counts.uploaded} of ${draws.length} sampled devices' updates; a new draw follows`);
          continue;
        }
        progress.status.phase = 'evaluating';
        const row = evaluate(`round ${open.number}`, runner.current().global);
        const pr: PopulationRound = {
          ...row,
          round: open.number,
          attempts,
          sampled: draws.length,
          updates: counts.uploaded,
          dropped: counts.dropped,
          notSelected: counts['not-selected'],
          errors: counts.error + counts.rejected,
          seconds,
          updatesPerSecond: counts.uploaded / seconds,
          meanNorm: norms.length ? mean(norms) : Number.NaN,
          clipNorm: e.clipNorm,
          ...(dp ? { epsilon: e.epsilonSpent } : {}),
        };
        rows.push(pr);
        attempts = 0;
        Object.assign(progress.status, { heldOutLoss: pr.mean, epsilon: dp ? e.epsilonSpent : undefined, phase: 'next round' });
        note(
          `round ${pr.round}: ${pr.updates}/${pr.sampled} updates (${pr.dropped} dropped, ${pr.notSelected} not taken) in ${seconds.toFixed(1)} s = ${pr.updatesPerSecond.toFixed(1)} updates/s; held-out ${pr.mean.toFixed(3)}, TinyStories ${pr.tinyStories.toFixed(3)}; norm ${pr.meanNorm.toFixed(3)}, C ${pr.clipNorm.toFixed(3)}${dp ? `; ε = ${e.epsilonSpent.toFixed(2)}` : ''}`,
        );
      }
    } finally {
      sub.unsubscribe();
    }
    progress.stop();
    const federatedSeconds = (performance.now() - tFed) / 1000;
    const final = rows.length ? { ...rows[rows.length - 1], label: 'federated' } : { ...baseOnly, label: 'federated (no round completed)' };
    const epsilon = runner.epsilonSpent();
    log(`\n${lossTable(domainNames, [baseOnly, ...rows])}\n`);
    const plotPath = join(outDir, 'loss-per-round.svg');
    writeFileSync(
      plotPath,
      lossPlotSvg(`fedtune population: ${N} devices, cohort ≈ ${cohort}, ${privacy}${dp ? ` (ε = ${epsilon.toFixed(2)})` : ''}`, [
        { label: 'held-out (mean)', values: [baseOnly.mean, ...rows.map((r) => r.mean)], color: '#1f77b4' },
        { label: 'TinyStories', values: [baseOnly.tinyStories, ...rows.map((r) => r.tinyStories)], color: '#9467bd' },
        { label: 'base only', values: [baseOnly.mean], color: '#7f7f7f', dashed: true },
      ]),
    );
    const summaryPath = join(outDir, 'summary.json');
    const summary: PopulationSummary = {
      settings: { population: N, cohort, cap, rounds, shards: options.shards ?? { kind: 'dirichlet', alpha: 0.3 }, meanChars: options.meanChars ?? 2000, online: options.online ?? 0.8, dropout: options.dropout ?? 0.05, training: program.training, lora: program.lora, privacy, dp: program.dp, serverOptimizer: program.serverOptimizer, threads, seed, evalTokens },
      domains: domainNames,
      baseOnly,
      rounds: rows,
      final,
      gain: baseOnly.mean - final.mean,
      forgetting: final.tinyStories / baseOnly.tinyStories - 1,
      epsilon,
      delta,
      noiseMultiplier: dp ? z : 0,
      ledgerQ,
      poissonQ: q,
      enrolment: { devices: todo.length, seconds: enrolSeconds, perSecond: todo.length / enrolSeconds },
      idle: { tableBytesPer10k: (tableBytes / N) * 10_000, rssBytesPer10k: ((rssTables - rss0) / N) * 10_000 },
      rssBytes: process.memoryUsage().rss,
      updatesPerSecond: trainSecondsAll > 0 ? updatesAll / trainSecondsAll : 0,
      federatedSeconds,
      totalSeconds: (performance.now() - t0) / 1000,
      plotPath,
      summaryPath,
    };
    writeFileSync(summaryPath, `${JSON.stringify(summary, null, 1)}\n`);
    log(`gain ${summary.gain.toFixed(3)} nats/token, forgetting ${(summary.forgetting * 100).toFixed(1)}%, ${summary.updatesPerSecond.toFixed(1)} updates/s; summary ${summaryPath}, plot ${plotPath}`);
    return summary;
  } finally {
    progress.stop();
    for (const w of workers) w.postMessage({ type: 'stop' } satisfies FleetRequest);
    await Promise.all(workers.map((w) => new Promise((r) => (w.threadId < 0 ? r(undefined) : w.once('exit', r)))));
    base.dispose();
    await running.shutdown(2000);
    if (shm) rmSync(shm, { recursive: true, force: true });
  }
}
