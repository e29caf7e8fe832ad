/**
 * A whole federation on one machine: a real coordinator on a loopback port, one worker thread
 * per device running the real Device library on its partner domain's non-IID text, evaluation of
 * every new global adapter on each domain's held-out text and on TinyStories (forgetting), then
 * the baselines — base only, local-only LoRA (each device alone, same steps) and centralized LoRA
 * (pooled text, same total steps) — a plot, the final adapter and a JSON summary.
 */
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { DeviceEvent, DeviceSummary } from '../client/index.js';
import { DOMAIN_NAMES, loadDomains, loadTinyStoriesHeldOut, type DomainName } from './domains.js';
import { adapterTensorsFromFlat, defaultBasePath, defaultTokenizerPath, evaluateLoss, initBackend, LoraAdapter, openBase, type MatrixName } from '../model/index.js';
import type { RobustRule, ServerOptimizerOptions } from '../aggregators/index.js';
import { programSpec, startCoordinator, type ProgramSpec } from '../server/index.js';
import { lossPlotSvg, lossTable, mean, type LossRow } from './report.js';
import { ProgressBoard } from './progress-board.js';
import type { DeviceWorkerData } from './device-worker.js';
import type { TrainWorkerData, TrainWorkerResult } from './train-worker.js';

/** Simulation settings; every field has a default (the demo's). */
export interface SimulationOptions {
  /** Devices in all, spread round-robin over the domains. Default 10 (2 per domain). */
  readonly devices?: number;
  readonly domains?: readonly DomainName[];
  /** Default 4. */
  readonly rounds?: number;
  /** Local steps per round. Default 15. */
  readonly steps?: number;
  /** Default 8. */
  readonly batchSize?: number;
  /** Default 128. */
  readonly seqLen?: number;
  /** Default 3e-3. */
  readonly lr?: number;
  /** Default 4. */
  readonly rank?: number;
  /** Default 2 × rank. */
  readonly alpha?: number;
  /** Default wq, wv, wo, w2. */
  readonly targets?: readonly MatrixName[];
  /** Share of device training text sampled from the base (generative replay). Default 0.3. */
  readonly replayFraction?: number;
  /** Default 8192. */
  readonly replayTokens?: number;
  /** Characters of local text per device. Default 60000. */
  readonly maxCharsPerDevice?: number;
  /** Held-out tokens per domain (and of TinyStories) evaluated. Default 4096. */
  readonly evalTokens?: number;
  /** Worker threads hosting the devices. Default: the machine's cores (at most one per device). */
  readonly threads?: number;
  /** Run the local-only and centralized baselines. Default true. */
  readonly baselines?: boolean;
  /** Where the adapter, plot and summary go. Default out/demo. */
  readonly outDir?: string;
  readonly seed?: number;
  /** Update compression of the program. Default 'none'. */
  readonly compression?: 'none' | 'q8' | 'q4';
  /** 'fedavg' (FedIT on A and B) or 'exact-dw'. Default 'fedavg'. */
  readonly aggregation?: 'fedavg' | 'exact-dw';
  /** Server optimizer (with its lr). Default plain FedAvg. */
  readonly serverOptimizer?: ServerOptimizerOptions;
  /** FFA-LoRA: A frozen from the program's seed, only B trained and sent. Default false. */
  readonly freezeA?: boolean;
  /** A robust rule on the round's deltas. */
  readonly robust?: RobustRule;
  /** The first N devices attack: they send −scale × their honest update. Default 0. */
  readonly attackers?: number;
  /** Attack scale. Default 10. */
  readonly attackScale?: number;
  /**
   * 'none'; 'dp': central DP (the coordinator adds N(0, (zC)²) to the sum); 'dp+secagg':
   * distributed DP (each device adds its share of the noise) under secure aggregation, so the
   * coordinator sees only the noised sum. Default 'none'.
   */
  readonly privacy?: 'none' | 'dp' | 'dp+secagg';
  /** FedProx μ for the devices' local training. Default 0. */
  readonly proximalMu?: number;
  /** DP clip norm C. Default 0.5. */
  readonly clipNorm?: number;
  /** DP noise multiplier z. Default 1. */
  readonly noiseMultiplier?: number;
  /** Draw progress bars (when stdout is a terminal). Default true. */
  readonly progress?: boolean;
  /** Line sink. Default console.log. */
  readonly log?: (line: string) => void;
}

/** Per domain: held-out loss before (base) and after each method. */
export interface SimulationSummary {
  readonly settings: Record<string, unknown>;
  readonly domains: readonly string[];
  readonly baseOnly: LossRow;
  readonly rounds: readonly LossRow[];
  readonly federated: LossRow;
  /** Each device's own adapter on its own domain (mean per domain over its devices). */
  readonly localOnly?: LossRow;
  /** Each device's own adapter on every domain (mean over devices): what one local adapter does off its domain. */
  readonly localOnlyAllDomains?: LossRow;
  readonly centralized?: LossRow;
  /** (base − federated) / (base − centralized) on the mean over domains. */
  readonly gapClosed?: number;
  /** TinyStories loss change of the federated adapter, relative. */
  readonly forgetting: number;
  readonly perDomain: Readonly<Record<string, { before: number; after: number; localOnly?: number; centralized?: number }>>;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly federatedSeconds: number;
  readonly totalSeconds: number;
  readonly adapterPath: string;
  readonly plotPath: string;
}

const TOKEN = 'simulation-enrolment-token';

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new RangeError(`runSimulation: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** Run a simulation and return its summary (also written to outDir/summary.json). */
export async function runSimulation(options: SimulationOptions = {}): Promise<SimulationSummary> {
  const t0 = performance.now();
  const log = options.log ?? ((l: string) => console.log(l));
  const names = options.domains ?? DOMAIN_NAMES;
  const nDevices = positiveInt('devices', options.devices ?? 2 * names.length);
  if (nDevices < names.length) throw new RangeError(`runSimulation: devices (${nDevices}) must be at least the number of domains (${names.length})`);
  const rounds = positiveInt('rounds', options.rounds ?? 4);
  const steps = positiveInt('steps', options.steps ?? 15);
  const evalTokens = positiveInt('evalTokens', options.evalTokens ?? 4096);
  const seed = options.seed ?? 1;
  const outDir = options.outDir ?? join('out', 'demo');
  const rank = options.rank ?? 4;
  const program: ProgramSpec = programSpec({
    id: 'demo',
    base: defaultBasePath(),
    tokenizer: defaultTokenizerPath(),
    enrolmentToken: TOKEN,
    lora: { rank, alpha: options.alpha ?? 2 * rank, targets: options.targets ?? ['wq', 'wv', 'wo', 'w2'], seed, freezeA: options.freezeA ?? false },
    training: { steps, batchSize: options.batchSize ?? 8, seqLen: options.seqLen ?? 128, lr: options.lr ?? 3e-3, quant: 'int8', replayFraction: options.replayFraction ?? 0.3, replayTokens: options.replayTokens ?? 8192, proximalMu: options.proximalMu ?? 0 },
    cohortSize: nDevices,
    minUpdates: Math.max(1, Math.ceil(nDevices * 0.8)),
    // the simulation's whole population is its devices; a version needs at least two of them (one if there is only one)
    minContributors: Math.min(nDevices, 2),
    overSelect: 1,
    rounds,
    roundDeadlineMs: 10 * 60_000,
    retryDelayMs: 500,
    compression: options.compression ?? 'none',
    aggregation: options.aggregation ?? 'fedavg',
    serverOptimizer: options.serverOptimizer ?? { kind: 'fedavg' },
    ...(options.robust ? { robust: options.robust } : {}),
    dp:
      options.privacy === 'dp'
        ? { mode: 'central', clipNorm: options.clipNorm ?? 0.5, noiseMultiplier: options.noiseMultiplier ?? 1, population: nDevices }
        : options.privacy === 'dp+secagg'
          ? { mode: 'distributed', clipNorm: options.clipNorm ?? 0.5, noiseMultiplier: options.noiseMultiplier ?? 1, population: nDevices }
          : {},
    ...(options.privacy === 'dp+secagg' ? { secagg: { phaseTimeoutMs: 60_000 } } : {}),
  });

  // text: devices round-robin over domains; held-out per domain; TinyStories for forgetting
  const perDomain = Math.ceil(nDevices / names.length);
  const domains = loadDomains({ devicesPerDomain: perDomain, maxTrainCharsPerDevice: options.maxCharsPerDevice ?? 60_000, domains: names, seed });
  const devices: { name: string; domain: number; text: string }[] = [];
  for (let k = 0; devices.length < nDevices; k++) for (const [di, d] of domains.entries()) if (devices.length < nDevices && k < d.devices.length) devices.push({ name: `${d.name}#${k}`, domain: di, text: d.devices[k].text });

  await initBackend();
  const { base, tokenizer } = openBase(program.basePath, program.training.quant, { tokenizerPath: program.tokenizerPath, seed: 1 });
  const held = domains.map((d) => tokenizer.encode(d.heldOut, { bos: false }).subarray(0, evalTokens));
  const stories = tokenizer.encode(loadTinyStoriesHeldOut(60_000), { bos: false }).subarray(0, evalTokens);
  const evaluate = (label: string, flat?: Float32Array): LossRow => {
    const adapter = flat ? LoraAdapter.fromTensors(base.config, base.sha256, program.lora, adapterTensorsFromFlat(base.config, program.lora, flat)) : undefined;
    try {
      const ds = held.map((h) => evaluateLoss(base, h, { startId: tokenizer.startId, adapter, context: 256 }).loss);
      return { label, domains: ds, mean: mean(ds), tinyStories: evaluateLoss(base, stories, { startId: tokenizer.startId, adapter, context: 256 }).loss };
    } finally {
      adapter?.dispose();
    }
  };
  const domainNames = domains.map((d) => d.name);
  const baseOnly = evaluate('base only');
  log(`${nDevices} devices over ${names.length} domains (${devices.map((d) => d.name).join(', ')}); ${rounds} rounds × ${steps} steps, LoRA rank ${rank} on ${program.lora.targets.join(',')}, replay ${program.training.replayFraction}`);
  log(`\nbase only: mean held-out loss ${baseOnly.mean.toFixed(3)}, TinyStories ${baseOnly.tinyStories.toFixed(3)}\n`);

  // the federation
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const running = await startCoordinator({ dataDir: join(outDir, 'coordinator'), programs: [program], port: 0 });
  const runner = running.coordinator.program('demo').runner;
  const board = new ProgressBoard(devices.map((d) => d.name), rounds, options.progress ?? true);
  const roundRows: LossRow[] = [];
  let down = 0;
  let downAtLast = 0;
  let totalUp = 0;
  const norms = new Map<string, number[]>();
  let last = performance.now();
  const tFed = performance.now();
  const sub = runner.events$.subscribe((e) => {
    if (e.state === 'FAILED') board.note(`round ${e.roundNumber} failed: ${e.message}`);
    if (e.state !== 'COMPLETED') return;
    const row = { ...evaluate(`round ${e.roundNumber}`, runner.current().global), bytesUp: e.bytesReceived, bytesDown: down - downAtLast, seconds: (performance.now() - last) / 1000, ...(program.dp.mode !== 'none' ? { epsilon: e.epsilonSpent } : {}) };
    totalUp += e.bytesReceived;
    downAtLast = down;
    last = performance.now();
    roundRows.push(row);
    board.clear();
    // (a device's 'uploaded' event may arrive just after the round closes; this counts those in)
    const ns = norms.get(e.roundId) ?? [];
    if (ns.length) log(`round ${e.roundNumber}: update L2 norms before clipping, mean ${mean(ns).toFixed(3)}, max ${Math.max(...ns).toFixed(3)} (${ns.length} reported so far)${program.dp.mode !== 'none' ? `; ε = ${e.epsilonSpent.toFixed(2)} at δ = ${program.dp.delta}` : ''}`);
    log(lossTable(domainNames, [baseOnly, ...roundRows]));
    log('');
  });
  const attackers = options.attackers ?? 0;
  if (!Number.isInteger(attackers) || attackers < 0 || attackers >= nDevices) throw new RangeError(`runSimulation: attackers must be an integer in [0, ${nDevices}), got ${attackers}`);
  const threads = positiveInt('threads', options.threads ?? Math.min(nDevices, availableParallelism()));
  const summaries: DeviceSummary[] = new Array(devices.length);
  await Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const mine: DeviceWorkerData[] = devices
        .map((d, i) => ({ index: i, address: running.address, programId: 'demo', dataDir: join(outDir, 'devices', d.name.replace('#', '-')), enrolmentToken: TOKEN, text: d.text, label: d.name, seed: seed * 1000 + i, attackScale: i < attackers ? (options.attackScale ?? 10) : 0 }))
        .filter((_, i) => i % threads === t);
      return new Promise<void>((resolve, reject) => {
        let left = mine.length;
        const w = new Worker(new URL('./device-worker.js', import.meta.url), { workerData: mine });
        w.on('message', (m: { type: string; index: number; event?: DeviceEvent; summary?: DeviceSummary; message?: string }) => {
          if (m.type === 'event' && m.event) {
            if (m.event.kind === 'downloaded') down += m.event.bytes - m.event.resumedFrom;
            if (m.event.kind === 'uploaded') norms.set(m.event.roundId, [...(norms.get(m.event.roundId) ?? []), m.event.updateNorm]);
            board.update(m.index, m.event);
          } else if (m.type === 'summary' && m.summary) {
            summaries[m.index] = m.summary;
            if (--left === 0) resolve();
          } else if (m.type === 'error') {
            w.postMessage('stop');
            reject(new Error(`device ${devices[m.index].name}: ${m.message}`));
          }
        });
        w.on('error', (e) => reject(new Error(`device worker ${t}: ${e.message}`)));
      });
    }),
  );
  board.stop();
  sub.unsubscribe();
  const federatedSeconds = (performance.now() - tFed) / 1000;
  const final = runner.current();
  const federated: LossRow = { ...evaluate('federated', final.global), bytesUp: totalUp, bytesDown: down, seconds: federatedSeconds, ...(program.dp.mode !== 'none' ? { epsilon: runner.epsilonSpent() } : {}) };
  const adapterPath = join(outDir, 'federated-adapter.safetensors');
  copyFileSync(join(outDir, 'coordinator', 'blobs', (await running.coordinator.store.latestVersion('demo')).sha256), adapterPath);
  await running.shutdown(2000);
  log(`federated: ${rounds} rounds in ${federatedSeconds.toFixed(1)} s; ${summaries.reduce((s, x) => s + x.updatesAccepted, 0)} updates accepted`);

  // baselines: two workers
  let localOnly: LossRow | undefined;
  let localOnlyAllDomains: LossRow | undefined;
  let centralized: LossRow | undefined;
  if (options.baselines ?? true) {
    log('\nbaselines: local-only (each device alone) and centralized (pooled text), same steps…');
    const tB = performance.now();
    const common = { basePath: program.basePath, tokenizerPath: program.tokenizerPath, lora: program.lora, training: program.training };
    const localJobs = devices.map((d, i) => ({ name: d.name, texts: [d.text], steps: rounds * steps, seed: seed * 1000 + i }));
    const centralJob = { name: 'central', texts: devices.map((d) => d.text), steps: rounds * steps * nDevices, seed: seed * 1000 + 999 };
    // two workers of equal work: the centralized run, and every local-only run in turn
    const results = (await Promise.all([trainInWorker({ ...common, jobs: [centralJob] }), trainInWorker({ ...common, jobs: localJobs })])).flat();
    const byName = new Map(results.map((r) => [r.name, r]));
    const central = byName.get('central') as TrainWorkerResult;
    centralized = { ...evaluate('centralized LoRA (pooled)', central.flat), seconds: central.seconds };
    // local-only: each domain's loss is the mean over its devices' own adapters
    const sums = domains.map(() => ({ loss: 0, n: 0, stories: 0 }));
    const all = domains.map(() => 0);
    for (const d of devices) {
      const r = evaluate(d.name, (byName.get(d.name) as TrainWorkerResult).flat);
      sums[d.domain].loss += r.domains[d.domain];
      sums[d.domain].stories += r.tinyStories;
      sums[d.domain].n++;
      r.domains.forEach((x, j) => (all[j] += x / devices.length));
    }
    const ds = sums.map((s) => s.loss / s.n);
    const localStories = sums.reduce((a, s) => a + s.stories, 0) / devices.length;
    localOnly = { label: 'local-only, own domain', domains: ds, mean: mean(ds), tinyStories: localStories };
    localOnlyAllDomains = { label: 'local-only, every domain', domains: all, mean: mean(all), tinyStories: localStories };
    log(`baselines in ${((performance.now() - tB) / 1000).toFixed(1)} s`);
  }
  base.dispose();

  const rows = [baseOnly, ...(localOnly && localOnlyAllDomains ? [localOnly, localOnlyAllDomains] : []), federated, ...(centralized ? [centralized] : [])];
  log(`\n${lossTable(domainNames, rows)}\n`);
  const gapClosed = centralized ? (baseOnly.mean - federated.mean) / (baseOnly.mean - centralized.mean) : undefined;
  const forgetting = federated.tinyStories / baseOnly.tinyStories - 1;
  if (gapClosed !== undefined) log(`federated closes ${(gapClosed * 100).toFixed(0)}% of the gap between base only and centralized LoRA (mean held-out loss)`);
  log(`TinyStories (forgetting): ${baseOnly.tinyStories.toFixed(3)} → ${federated.tinyStories.toFixed(3)} (${(forgetting * 100).toFixed(1)}%)`);

  const plotPath = join(outDir, 'loss-per-round.svg');
  writeFileSync(
    plotPath,
    lossPlotSvg('fedtune: mean held-out loss over partner domains', [
      { label: 'federated', values: [baseOnly.mean, ...roundRows.map((r) => r.mean)], color: '#1f77b4' },
      { label: 'TinyStories (fed)', values: [baseOnly.tinyStories, ...roundRows.map((r) => r.tinyStories)], color: '#9467bd' },
      { label: 'base only', values: [baseOnly.mean], color: '#7f7f7f', dashed: true },
      ...(localOnly ? [{ label: 'local-only', values: [localOnly.mean], color: '#ff7f0e', dashed: true }] : []),
      ...(centralized ? [{ label: 'centralized', values: [centralized.mean], color: '#2ca02c', dashed: true }] : []),
    ]),
  );
  const summary: SimulationSummary = {
    settings: {
      devices: nDevices,
      rounds,
      steps,
      batchSize: program.training.batchSize,
      seqLen: program.training.seqLen,
      lr: program.training.lr,
      lora: program.lora,
      replayFraction: program.training.replayFraction,
      evalTokens,
      seed,
      compression: program.compression,
      aggregation: program.aggregation,
      serverOptimizer: program.serverOptimizer,
      robust: program.robust,
      attackers,
      dp: program.dp,
    },
    domains: domainNames,
    baseOnly,
    rounds: roundRows,
    federated,
    localOnly,
    localOnlyAllDomains,
    centralized,
    gapClosed,
    forgetting,
    perDomain: Object.fromEntries(domainNames.map((n, i) => [n, { before: baseOnly.domains[i], after: federated.domains[i], localOnly: localOnly?.domains[i], centralized: centralized?.domains[i] }])),
    bytesUp: totalUp,
    bytesDown: down,
    federatedSeconds,
    totalSeconds: (performance.now() - t0) / 1000,
    adapterPath,
    plotPath,
  };
  writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
  log(`adapter: ${adapterPath}\nplot: ${plotPath}\nsummary: ${join(outDir, 'summary.json')}\ntotal ${summary.totalSeconds.toFixed(1)} s`);
  return summary;
}

function trainInWorker(data: TrainWorkerData): Promise<TrainWorkerResult[]> {
  if (data.jobs.length === 0) return Promise.resolve([]);
  return new Promise((resolve, reject) => {
    const out: TrainWorkerResult[] = [];
    const w = new Worker(new URL('./train-worker.js', import.meta.url), { workerData: data });
    w.on('message', (m: { type: string; result?: TrainWorkerResult; message?: string }) => {
      if (m.type === 'result' && m.result) out.push(m.result);
      else if (m.type === 'error') reject(new Error(`baseline training: ${m.message}`));
    });
    w.on('error', reject);
    w.on('exit', () => (out.length === data.jobs.length ? resolve(out) : reject(new Error(`baseline worker ended after ${out.length} of ${data.jobs.length} jobs`))));
  });
}
