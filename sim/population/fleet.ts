/**
 * A fleet on one machine: a population of virtual devices (identities from one seed file,
 * shards as pointers into the partner domains' text, availability), a real coordinator on a
 * loopback port hosting one or more programs, and worker threads that run the devices through
 * the real Device library. The fleet enrols its devices in a program, and runs that program's
 * rounds one at a time: every device the availability model puts online checks in (one signed
 * CheckIn each), the coordinator's sampling (server/sampling.ts: one Bernoulli(q) coin per
 * check-in under poisson) picks who works, the others get a ComeBack; the fleet ends the
 * selection once every online device's check-in was answered, some sampled devices drop out
 * before uploading, and the round closes once every sampled device has answered.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { adapterTensorsFromFlat, evaluateLoss, initBackend, LoraAdapter, openBase, type FrozenBase, type LoraConfig, type TextTokenizer } from '../../model/index.js';
import { seededRng, type Rng } from '../../random/rng.js';
import { startCoordinator, type ProgramSpec, type RunningCoordinator } from '../../server/index.js';
import { DOMAIN_NAMES, loadDomains, loadTinyStoriesHeldOut, type DomainName } from '../domains.js';
import { mean, type LossRow } from '../report.js';
import { buildAvailability, drawOnline, type Availability } from './availability.js';
import type { FleetStatus } from './fleet-progress.js';
import type { FleetOutcome, FleetProgram, FleetReply, FleetRequest, FleetTask, FleetWorkerData } from './fleet-worker.js';
import { PopulationIdentities } from './identities.js';
import { buildShards, type ShardScheme, type ShardTable } from './shards.js';

/** Options of {@link Fleet.start}; every field but `programs` has a default. */
export interface FleetOptions {
  /** The programs the coordinator hosts (all on the same base and tokenizer). */
  readonly programs: readonly ProgramSpec[];
  /** Virtual devices. Default 10,000. */
  readonly population?: number;
  /** Default dirichlet:0.3. */
  readonly shards?: ShardScheme;
  /** Mean characters of text per device (lognormal sizes). Default 2,000. */
  readonly meanChars?: number;
  /** σ of log(device size). Default 1. */
  readonly sizeSigma?: number;
  /** Mean online probability per round. Default 0.8. */
  readonly online?: number;
  /** Width of the per-device spread of online probabilities around the mean. Default 0.3. */
  readonly onlineSpread?: number;
  /** Probability a working device drops out before uploading. Default 0.05. */
  readonly dropout?: number;
  readonly domains?: readonly DomainName[];
  /** Held-out tokens per domain (and of TinyStories) evaluated. Default 2048. */
  readonly evalTokens?: number;
  /** Worker threads hosting devices. Default: the machine's cores. */
  readonly threads?: number;
  /** gRPC channels per worker. Default 2. */
  readonly channels?: number;
  /** Sampled devices one worker runs at once (all at once under secure aggregation). Default 16. */
  readonly concurrency?: number;
  /** Check-ins one worker has in flight at once. Default 64. */
  readonly checkInConcurrency?: number;
  /** Most devices of a worker trained together as one tensor program (sim/batching-trainer.ts); 1 = each alone. Default 8. */
  readonly batch?: number;
  /** How long (ms) a cohort's first training request waits for more devices to join. Default 0: the next macrotask. */
  readonly batchLingerMs?: number;
  /**
   * The coordinator's data dir. Default: a fresh folder in /dev/shm when there is one (its
   * database syncs every enrolment to disk, which then dominates enrolling a population), else
   * outDir/coordinator. Removed at close when it was made in /dev/shm.
   */
  readonly coordinatorDir?: string;
  /** Population files (seed file, enrolments) and scratch dirs. */
  readonly outDir: string;
  readonly seed?: number;
}

/** How a round went for the fleet. */
export interface FleetRound {
  readonly round: number;
  readonly roundId: string;
  readonly state: 'COMPLETED' | 'FAILED';
  /** Online devices that checked in (each got the coordinator's coin). */
  readonly checkIns: number;
  /** Devices the coordinator sampled. */
  readonly sampled: number;
  /** Check-ins that failed or were refused for another reason than not being sampled. */
  readonly checkInFailures: number;
  /** From the round's open (the first check-in) to the last check-in's answer. */
  readonly checkInSeconds: number;
  /** Device runs trained in a cohort of several (BatchingTrainer), the cohorts, and the largest. */
  readonly batched: { readonly runs: number; readonly cohorts: number; readonly largest: number };
  readonly counts: Readonly<Record<FleetOutcome, number>>;
  /** Update norms (before clipping) of the accepted updates. */
  readonly norms: readonly number[];
  /** From the draw to the last device's answer. */
  readonly seconds: number;
  /** Devices' own training time (LocalTrainer wall time, other devices of the worker interleaving), summed over the accepted updates. */
  readonly trainSeconds: number;
  /** Per worker, the share of the round its thread was busy (event-loop utilization). */
  readonly workerBusy: readonly number[];
  /** Share of that wall time the coordinator's thread (this one) was busy. */
  readonly mainThreadBusy: number;
  readonly epsilonSpent: number;
  readonly clipNorm: number;
  readonly errors: readonly string[];
}

const OUTCOMES: readonly FleetOutcome[] = ['uploaded', 'dropped', 'not-selected', 'rejected', 'error'];

/** The fleet (see the file comment). Start with {@link Fleet.start}; close() when done. */
export class Fleet {
  private readonly handlers = new Set<(w: number, m: FleetReply) => void>();
  private readonly failures: string[] = [];
  private readonly boxKeys = new Map<string, string>();
  private readonly rng: Rng;

  private constructor(
    readonly population: number,
    readonly running: RunningCoordinator,
    private readonly workers: Worker[],
    readonly identities: PopulationIdentities,
    readonly shards: ShardTable,
    readonly availability: Availability,
    readonly domainNames: readonly string[],
    private readonly base: FrozenBase,
    private readonly tokenizer: TextTokenizer,
    private readonly held: readonly Int32Array[],
    private readonly stories: Int32Array,
    private readonly shm: string | undefined,
    seed: number,
    /** RSS growth while the population's tables were built, bytes. */
    readonly tablesRssBytes: number,
  ) {
    this.rng = seededRng(seed * 7919 + 3);
    workers.forEach((w, i) =>
      w.on('message', (m: FleetReply) => {
        if (m.type === 'error') this.failures.push(`worker ${i}: ${m.message}`);
        for (const h of this.handlers) h(i, m);
      }),
    );
  }

  /** Build the population, start the coordinator and the workers (each opens the base once). */
  static async start(o: FleetOptions): Promise<Fleet> {
    const N = o.population ?? 10_000;
    if (!Number.isInteger(N) || N < 1) throw new RangeError(`Fleet.start: population must be a positive integer, got ${N}`);
    if (!o.programs?.length) throw new RangeError('Fleet.start: programs must list at least one program');
    const threads = o.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`Fleet.start: threads must be a positive integer, got ${threads}`);
    for (const k of ['concurrency', 'checkInConcurrency', 'batch', 'channels'] as const) {
      const x = o[k];
      if (x !== undefined && !(Number.isInteger(x) && x >= 1)) throw new RangeError(`Fleet.start: ${k} must be a positive integer, got ${x}`);
    }
    if (o.batchLingerMs !== undefined && !(Number.isFinite(o.batchLingerMs) && o.batchLingerMs >= 0)) throw new RangeError(`Fleet.start: batchLingerMs must be a finite number ≥ 0, got ${o.batchLingerMs}`);
    const seed = o.seed ?? 1;
    const first = o.programs[0];
    const domains = loadDomains({ devicesPerDomain: 1, domains: o.domains ?? DOMAIN_NAMES, heldOutChars: 20_000, seed });
    const domainTexts = domains.map((d) => d.devices[0].text);
    mkdirSync(o.outDir, { recursive: true });
    // working devices' data dirs from an earlier fleet (another coordinator, another release key) go
    rmSync(join(o.outDir, 'scratch'), { recursive: true, force: true });
    const rss0 = process.memoryUsage().rss;
    const shards = buildShards({ domainLengths: domainTexts.map((t) => t.length), devices: N, scheme: o.shards ?? { kind: 'dirichlet', alpha: 0.3 }, meanChars: o.meanChars, sizeSigma: o.sizeSigma, seed });
    const availability = buildAvailability({ devices: N, online: o.online, spread: o.onlineSpread, dropout: o.dropout, seed: seed + 1 });
    const identities = new PopulationIdentities(join(o.outDir, 'population'), N);
    const tablesRss = process.memoryUsage().rss - rss0;
    await initBackend();
    const { base, tokenizer } = openBase(first.basePath, first.training.quant, { tokenizerPath: first.tokenizerPath, seed: 1 });
    const evalTokens = o.evalTokens ?? 2048;
    const held = domains.map((d) => tokenizer.encode(d.heldOut, { bos: false }).subarray(0, evalTokens));
    const stories = tokenizer.encode(loadTinyStoriesHeldOut(40_000), { bos: false }).subarray(0, evalTokens);
    const shm = o.coordinatorDir === undefined && existsSync('/dev/shm') ? mkdtempSync('/dev/shm/fedtune-fleet-') : undefined;
    const running = await startCoordinator({
      dataDir: o.coordinatorDir ?? shm ?? join(o.outDir, 'coordinator'),
      programs: o.programs,
      port: 0,
      // every simulated device enrols from 127.0.0.1: the wrong-token throttle is per address, so
      // the simulation allows its whole population explicitly (right tokens are never throttled)
      enrolThrottle: { perPeer: Math.max(10, N), global: Math.max(200, N) },
    });
    const workers: Worker[] = [];
    try {
      const ready = await Promise.all(
        Array.from({ length: threads }, (_, w) => {
          const data: FleetWorkerData = {
            worker: w,
            address: running.address,
            master: Buffer.from(identities.master).toString('hex'),
            basePath: first.basePath,
            tokenizerPath: first.tokenizerPath ?? '',
            quant: first.training.quant,
            domainTexts,
            shards: { segStart: shards.segStart, segDomain: shards.segDomain, segOffset: shards.segOffset, segLength: shards.segLength },
            scratchDir: join(o.outDir, 'scratch'),
            channels: o.channels ?? 2,
            concurrency: o.concurrency ?? 16,
            checkInConcurrency: o.checkInConcurrency ?? 64,
            batch: o.batch ?? 8,
            batchLingerMs: o.batchLingerMs ?? 0,
            seed,
          };
          const worker = new Worker(new URL('./fleet-worker.js', import.meta.url), { workerData: data });
          workers.push(worker);
          return new Promise<string>((resolve, reject) => {
            const onMessage = (m: FleetReply): void => {
              if (m.type === 'ready') resolve(m.baseSha256);
              else if (m.type === 'error') reject(new Error(`fleet worker ${w}: ${m.message}`));
              else return;
              worker.off('message', onMessage);
            };
            worker.on('message', onMessage);
            worker.once('error', reject);
          });
        }),
      );
      const blob = running.coordinator.program(first.id).base.blob.sha256;
      if (ready.some((s) => s !== blob)) throw new Error(`Fleet.start: the workers opened a base of identity ${ready[0].slice(0, 12)}…, not the program's base blob ${blob.slice(0, 12)}…`);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      base.dispose();
      await running.shutdown(1000);
      if (shm) rmSync(shm, { recursive: true, force: true });
      throw e;
    }
    return new Fleet(N, running, workers, identities, shards, availability, domains.map((d) => d.name), base, tokenizer, held, stories, shm, seed, tablesRss);
  }

  /** Bytes the idle population's tables hold (shards, availability, one device id per program). */
  tableBytes(programs = 1): number {
    return this.shards.bytes + this.availability.online.byteLength + programs * this.population * (8 + 2 * 28);
  }

  private program(programId: string): FleetProgram {
    const p = this.running.coordinator.program(programId);
    return { programId, enrolmentToken: p.spec.enrolmentToken, releaseKey: Buffer.from(p.releases.key.publicKey).toString('hex') };
  }

  private until<T>(pick: (w: number, m: FleetReply) => T | undefined, count: number, onEach?: (v: T) => void): Promise<T[]> {
    return new Promise((resolve, reject) => {
      const got: T[] = [];
      if (count === 0) return resolve(got);
      const h = (w: number, m: FleetReply): void => {
        if (m.type === 'error') {
          this.handlers.delete(h);
          reject(new Error(this.failures.join('; ')));
          return;
        }
        const v = pick(w, m);
        if (v === undefined) return;
        got.push(v);
        onEach?.(v);
        if (got.length === count) {
          this.handlers.delete(h);
          resolve(got);
        }
      };
      this.handlers.add(h);
    });
  }

  /** Enrol every device not yet enrolled in `programId` (through Device.enroll in the workers). */
  async enrol(programId: string): Promise<{ devices: number; seconds: number; perSecond: number }> {
    const t0 = performance.now();
    const program = this.program(programId);
    // enrolments recorded in the population's files count only if this coordinator knows them
    const store = this.running.coordinator.store;
    const known = await Promise.all(Array.from({ length: this.population }, (_, i) => this.identities.deviceId(programId, i)).map(async (id) => (id ? (await store.device(id)) !== undefined : false)));
    const todo = known.flatMap((k, i) => (k ? [] : [i]));
    const n = this.workers.length;
    const replies = this.until((_, m) => (m.type === 'enrolled' && m.programId === programId ? m : undefined), n);
    this.workers.forEach((w, k) => w.postMessage({ type: 'enrol', program, indices: todo.filter((i) => i % n === k) } satisfies FleetRequest));
    const got = await replies;
    this.boxKeys.set(programId, Buffer.from(this.running.coordinator.program(programId).keys.publicKey).toString('hex'));
    this.identities.record(programId, got.flatMap((r) => r.entries));
    const seconds = (performance.now() - t0) / 1000;
    return { devices: todo.length, seconds, perSecond: todo.length / Math.max(seconds, 1e-9) };
  }

  /**
   * Run the next round of `programId`: wait for it to open; every device online this round (the
   * availability model) checks in once and the coordinator's coins pick who works; once every
   * check-in has been answered the selection ends (endSelectionNow: no other device can come);
   * the sampled devices train (batched per worker) and upload or drop out; then the round closes
   * and the fleet waits for its end. `status` (if given) follows the devices. The program must
   * sample (`sampling.scheme` poisson or fixed-cohort), not take the first devices that come.
   * `options.batch` overrides the fleet's batch size for this round.
   */
  async runRound(programId: string, status?: FleetStatus, options: { readonly batch?: number } = {}): Promise<FleetRound | undefined> {
    const coordinatorProgram = this.running.coordinator.program(programId);
    const runner = coordinatorProgram.runner;
    const boxKey = this.boxKeys.get(programId);
    if (!boxKey) throw new RangeError(`Fleet.runRound: enrol the population in ${programId} first`);
    if (coordinatorProgram.spec.sampling.scheme === 'first-come') throw new RangeError(`Fleet.runRound: program ${programId} samples first-come; a fleet checks in every online device, so its program must use sampling.scheme "poisson" (or "fixed-cohort")`);
    let open = runner.openRound;
    for (let waited = 0; !open && !runner.done; waited += 25) {
      if (waited > 120_000) throw new Error(`Fleet.runRound: no round of ${programId} opened within 2 minutes (${runner.status().reason})`);
      await new Promise((r) => setTimeout(r, 25));
      open = runner.openRound;
    }
    if (!open) return undefined;
    const { id: roundId, number: round } = open;
    let sub: { unsubscribe(): void } | undefined;
    const ended = new Promise<{ state: string; epsilonSpent: number; clipNorm: number }>((resolve) => {
      sub = runner.events$.subscribe((e) => {
        if (e.roundId === roundId && (e.state === 'COMPLETED' || e.state === 'FAILED')) resolve(e);
      });
    });
    const handlers: ((w: number, m: FleetReply) => void)[] = [];
    try {
      const online = drawOnline(this.rng, this.availability);
      const n = this.workers.length;
      const tasks: FleetTask[][] = Array.from({ length: n }, () => []);
      online.forEach((d, k) => tasks[k % n].push({ index: d.index, deviceId: this.identities.deviceId(programId, d.index), dropsOut: d.dropsOut }));
      if (status) Object.assign(status, { round, sampled: 0, done: 0, dropped: 0, phase: `check-ins (${online.length} online)` });
      const t0 = performance.now();
      const counts = Object.fromEntries(OUTCOMES.map((k) => [k, 0])) as Record<FleetOutcome, number>;
      const norms: number[] = [];
      const errors: string[] = [];
      let trainSeconds = 0;
      let sampled = 0;
      let checkInFailures = 0;
      let checkInSeconds = 0;
      const elu0 = performance.eventLoopUtilization();
      const on = (h: (w: number, m: FleetReply) => void): void => {
        handlers.push(h);
        this.handlers.add(h);
      };
      on((_, m) => {
        if (m.type !== 'task' || m.programId !== programId || m.round !== round) return;
        counts[m.outcome]++;
        if (m.outcome === 'uploaded') {
          norms.push(m.updateNorm);
          trainSeconds += m.trainSeconds;
        }
        if (m.outcome === 'error' || m.outcome === 'rejected') errors.push(`device ${m.index}: ${m.message}`);
        if (status) {
          if (m.outcome === 'uploaded') status.done++;
          else status.dropped++;
          status.updatesPerSecond = counts.uploaded / ((performance.now() - t0) / 1000);
        }
      });
      // every online device's check-in answered: nobody else can be sampled, so the selection ends
      // (under secure aggregation this also starts its protocol among the sampled devices)
      const checkedIn = this.until((_, m) => (m.type === 'checked-in' && m.programId === programId && m.round === round ? m : undefined), n, (m) => {
        sampled += m.sampled;
        counts['not-selected'] += m.notSampled;
        checkInFailures += m.failed;
        if (m.message) errors.push(m.message);
        if (status) status.sampled = sampled;
      });
      const done = this.until((w, m) => (m.type === 'round-done' && m.programId === programId && m.round === round ? ([w, m] as const) : undefined), n);
      done.catch(() => undefined); // a worker's error rejects checkedIn too, which is awaited first
      const program = this.program(programId);
      this.workers.forEach((w, k) => w.postMessage({ type: 'round', program, round, roundId, allAtOnce: coordinatorProgram.spec.secagg !== undefined, programBoxPublicKey: boxKey, tasks: tasks[k], ...(options.batch !== undefined ? { batch: options.batch } : {}) } satisfies FleetRequest));
      await checkedIn;
      checkInSeconds = (performance.now() - t0) / 1000;
      // false while the round is still open: its selection had closed on its own timer before every
      // online device checked in (some were refused), which a fleet's rounds must not do
      if (runner.openRound?.id === roundId && !runner.endSelectionNow()) errors.push(`round ${round}'s selection closed before every online device had checked in (sampling.selectionMs too short for this fleet)`);
      if (status) status.phase = 'training';
      const workerBusy = new Array<number>(n).fill(0);
      const batched = { runs: 0, cohorts: 0, largest: 0 };
      for (const [w, m] of await done) {
        workerBusy[w] = m.busy;
        batched.runs += m.batched.runs;
        batched.cohorts += m.batched.cohorts;
        batched.largest = Math.max(batched.largest, m.batched.largest);
      }
      const seconds = (performance.now() - t0) / 1000;
      const mainThreadBusy = performance.eventLoopUtilization(elu0).utilization;
      if (status) status.phase = 'aggregating';
      if (runner.openRound?.id === roundId) runner.closeRoundNow('every sampled device answered');
      const e = await ended;
      return { round, roundId, state: e.state === 'COMPLETED' ? 'COMPLETED' : 'FAILED', checkIns: online.length, sampled, checkInFailures, checkInSeconds, batched, counts, norms, seconds, trainSeconds, workerBusy, mainThreadBusy, epsilonSpent: e.epsilonSpent, clipNorm: e.clipNorm, errors };
    } finally {
      for (const h of handlers) this.handlers.delete(h);
      sub?.unsubscribe();
    }
  }

  /** Held-out loss per domain and on TinyStories of an adapter (flat values; none = the base). */
  evaluate(label: string, lora: LoraConfig, flat?: Float32Array): LossRow {
    const { base, tokenizer } = this;
    const adapter = flat ? LoraAdapter.fromTensors(base.config, base.sha256, lora, adapterTensorsFromFlat(base.config, lora, flat)) : undefined;
    try {
      const ds = this.held.map((h) => evaluateLoss(base, h, { startId: tokenizer.startId, adapter, context: 256 }).loss);
      return { label, domains: ds, mean: mean(ds), tinyStories: evaluateLoss(base, this.stories, { startId: tokenizer.startId, adapter, context: 256 }).loss };
    } finally {
      adapter?.dispose();
    }
  }

  /** Stop the workers and the coordinator. */
  async close(): Promise<void> {
    for (const w of this.workers) w.postMessage({ type: 'stop' } satisfies FleetRequest);
    await Promise.all(this.workers.map((w) => new Promise((r) => (w.threadId < 0 ? r(undefined) : w.once('exit', r)))));
    this.base.dispose();
    await this.running.shutdown(2000);
    if (this.shm) rmSync(this.shm, { recursive: true, force: true });
  }
}
