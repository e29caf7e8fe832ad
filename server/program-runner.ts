/**
 * One program's rounds as an explicit state machine, with its events as an rxjs Observable:
 *
 *   idle ──open──▶ OPEN ──enough updates / all answered / deadline──▶ AGGREGATING ──▶ COMPLETED ─▶ next round
 *                    └──────── fewer than minUpdates at close ────────▶ FAILED ─(retryDelayMs)─▶ same round, next attempt
 *
 * Devices are selected as they check in (up to ceil(cohortSize × overSelect) per round); the
 * round closes as soon as cohortSize updates arrive, when every selected device has answered
 * and the selection is full, or at the deadline. Aggregation is the program's Strategy over the
 * validated deltas; the new adapter's blob is written, then the version and the round's
 * completion are committed in one transaction, and only then is the event published.
 */
import { Observable, Subject, concat, defer, from } from 'rxjs';
import { filter } from 'rxjs/operators';
import { CentralDpStrategy, ExactDeltaWStrategy, FedAvgAccumulator, FedAvgStrategy, RobustStrategy, type ClientFailure, type ClientResult, type Strategy } from '../aggregators/index.js';
import { adapterTensorsFromFlat, encodeAdapterTensors, flatLayout, type LlamaConfig, type Rng } from '../model/index.js';
import type { BlobStore } from './blob-store.js';
import { refuse } from './errors.js';
import { AdaptiveClip } from '../privacy/adaptive-clip.js';
import { SecAggRound, type SecAggOutcome } from './secagg-round.js';
import type { ProgramSpec } from './program-config.js';
import type { Store, StoredRound, StoredVersion } from './store.js';
import { epsilonOfSteps, type AccountedStep } from '../privacy/accountant/index.js';
import { noiseStd } from '../privacy/noise.js';

/** Lifecycle states of a round (the wire's RoundState without the prefix). */
export type RoundStateName = 'OPEN' | 'AGGREGATING' | 'COMPLETED' | 'FAILED';

/** One round event, as WatchRounds sends it. */
export interface RoundEventRecord {
  readonly programId: string;
  readonly roundNumber: number;
  readonly roundId: string;
  readonly state: RoundStateName;
  readonly adapterVersion: number;
  readonly updatesReceived: number;
  readonly epsilonSpent: number;
  readonly message: string;
  readonly timeUnixMs: number;
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  readonly bytesReceived: number;
  readonly devicesSelected: number;
  readonly devicesFailed: number;
}

/** Work handed to a device. */
export interface WorkOrder {
  readonly roundId: string;
  readonly adapterVersion: number;
  readonly adapterSha256: string;
  readonly adapterBytes: number;
  readonly clipNorm: number;
  readonly deviceNoiseStd: number;
  readonly deadlineUnixMs: number;
}

/** No work now: when to ask again, and whether the program has finished. */
export interface ComeBack {
  readonly retryAfterMs: number;
  readonly reason: string;
  readonly programComplete: boolean;
}

interface OpenRound {
  readonly number: number;
  readonly attempt: number;
  readonly id: string;
  readonly openedMs: number;
  readonly deadline: number;
  readonly selected: Map<string, 'working' | 'done' | 'failed'>;
  readonly results: ClientResult[];
  readonly failures: ClientFailure[];
  bytes: number;
  timer?: NodeJS.Timeout;
  /** Secure aggregation of this round (secagg programs). */
  secagg?: SecAggRound;
  /** Devices whose updates are in the aggregate (secagg: the survivors). */
  contributors?: number;
  /** Each accepted device's report: was its update's norm within C before clipping? */
  readonly reports: boolean[];
  /** The clip bound C devices use this round. */
  readonly clip: number;
  /** Plain FedAvg rounds stream: updates are folded in as they arrive (O(adapter) memory). */
  acc?: FedAvgAccumulator;
}

/** Dependencies of a runner. */
export interface RunnerDeps {
  readonly spec: ProgramSpec;
  readonly baseConfig: LlamaConfig;
  readonly baseSha256: string;
  readonly store: Store;
  readonly blobs: BlobStore;
  /** The global adapter at the latest version. */
  readonly global: Float32Array;
  /** Noise source for central DP (crypto-strength in production). */
  readonly rng: Rng;
  /** Values in an update (packed under FFA-LoRA), and how to expand a packed vector to the flat adapter. */
  readonly updateLength: number;
  readonly expand: (packed: Float32Array) => Float32Array;
  /** SecAgg: values are clamped to ±this before fixed-point encoding. */
  readonly secAggBound: number;
  /** A device's Ed25519 public key (SecAgg adverts are signed with it). */
  readonly signKeyOf: (deviceId: string) => Uint8Array;
  readonly log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Runs one program's rounds. */
export class ProgramRunner {
  private readonly subject = new Subject<RoundEventRecord>();
  private readonly history: RoundEventRecord[] = [];
  private readonly strategy: Strategy;
  private adaptive?: AdaptiveClip;
  private readonly inner: Strategy;
  private global: Float32Array;
  /** The newest version's record (kept in memory: every check-in needs it). */
  private latest: StoredVersion;
  /** ε spent so far at the program's δ: composed once at start, then each ledger entry's ε after it. */
  private spent: number;
  private completed: number;
  private round?: OpenRound;
  private aggregating = false;
  private stopped = false;
  /** Why no further round may run (privacy budget), if so. */
  private exhausted?: string;
  private readonly ledger: AccountedStep[];
  private retryTimer?: NodeJS.Timeout;

  constructor(private readonly d: RunnerDeps) {
    const { spec, store } = d;
    this.global = d.global;
    this.latest = store.latestVersion(spec.id);
    this.completed = store.completedRounds(spec.id);
    this.inner = innerStrategyFor(spec, d.baseConfig);
    this.strategy = wrapStrategy(spec, this.inner, d.rng, spec.dp.clipNorm, spec.dp.noiseMultiplier);
    if (spec.dp.adaptiveClip) {
      // resume at the clip norm the last completed round used (the update after it is not stored)
      const last = store.rounds(spec.id).filter((x) => x.state === 'completed').pop();
      this.adaptive = new AdaptiveClip({ initialClip: last?.clipNorm || spec.dp.clipNorm, ...spec.dp.adaptiveClip });
    }
    for (const r of store.rounds(spec.id)) if (r.state !== 'open') this.history.push(this.eventOf(r, r.state === 'completed' ? 'COMPLETED' : 'FAILED'));
    this.ledger = store.ledger(spec.id).map((e) => ({ q: e.q, sigma: e.sigma }));
    this.spent = spec.dp.mode === 'none' ? 0 : epsilonOfSteps(this.ledger, spec.dp.delta).epsilon;
  }

  /** True when rounds of this program spend privacy. */
  private get private(): boolean {
    return this.d.spec.dp.mode !== 'none';
  }

  /** ε spent so far at the program's δ (0 without DP). */
  epsilonSpent(): number {
    return this.spent;
  }

  /** The sampling rate of a round now: cohort / population (declared, or the devices enrolled). */
  private sampleRate(): number {
    const { spec, store } = this.d;
    const population = Math.max(spec.dp.population, store.deviceCount(spec.id), 1);
    return Math.min(1, spec.cohortSize / population);
  }

  /**
   * The noise multiplier of a round's sum with `updates` contributions: z for central noise; for
   * local noise each device adds z·C, so the sum has at least z·C; for distributed noise the
   * survivors' shares add up to z·C·√(updates / cohort) — dropouts cost privacy.
   */
  private roundSigma(updates: number): number {
    const { mode, noiseMultiplier: z } = this.d.spec.dp;
    return mode === 'distributed' ? z * Math.sqrt(Math.min(1, updates / this.d.spec.cohortSize)) : z;
  }

  /** Every round event from now on. */
  get events$(): Observable<RoundEventRecord> {
    return this.subject.asObservable();
  }

  /** Past events of rounds after `afterRound`, then live ones. */
  watch(afterRound = 0): Observable<RoundEventRecord> {
    return concat(defer(() => from(this.history.filter((e) => e.roundNumber > afterRound))), this.subject.pipe(filter((e) => e.roundNumber > afterRound)));
  }

  /** The global adapter version and its values (a copy). */
  current(): { version: number; global: Float32Array; completedRounds: number } {
    return { version: this.latest.version, global: this.global.slice(), completedRounds: this.completed };
  }

  /** The newest adapter version's record. */
  get latestVersion(): StoredVersion {
    return this.latest;
  }

  /** Rounds completed so far. */
  get completedRounds(): number {
    return this.completed;
  }

  /** True once every round has completed, or the privacy budget allows no more. */
  get done(): boolean {
    return this.completed >= this.d.spec.rounds || this.exhausted !== undefined;
  }

  /** Open the next round (resuming after the last completed one). */
  start(): void {
    if (!this.done && !this.round) this.open(this.nextAttempt());
    else if (this.done) this.subject.complete();
  }

  /** Stop timers; an open round is left open in the store and failed at the next start. */
  stop(): void {
    this.stopped = true;
    if (this.round?.timer) clearTimeout(this.round.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.subject.complete();
  }

  private nextAttempt(): number {
    const number = this.completed + 1;
    return this.d.store.rounds(this.d.spec.id).filter((r) => r.roundNumber === number).length + 1;
  }

  private open(attempt: number): void {
    if (this.stopped) return;
    const { spec, store } = this.d;
    const number = this.completed + 1;
    const now = Date.now();
    if (this.private && Number.isFinite(spec.dp.epsilonBudget)) {
      // refuse a round that could exceed the budget (worst case: the fewest updates that close it)
      const next = epsilonOfSteps([...this.ledger, { q: this.sampleRate(), sigma: this.roundSigma(spec.minUpdates) }], spec.dp.delta).epsilon;
      if (next > spec.dp.epsilonBudget) {
        this.exhausted = `privacy budget: round ${number} would bring ε to ${next.toFixed(3)} > the budget ${spec.dp.epsilonBudget} (δ = ${spec.dp.delta}; ${this.ledger.length} round(s) spent ε = ${this.epsilonSpent().toFixed(3)}); no more rounds`;
        this.d.log?.('budget exhausted', { program: spec.id, round: number, epsilonNext: next, budget: spec.dp.epsilonBudget });
        this.publish(this.eventOf(this.record(this.newRound(number, 0, `${spec.id}.r${number}.budget`, now, now), 'failed', this.exhausted), 'FAILED'));
        this.subject.complete();
        return;
      }
    }
    const round = this.newRound(number, attempt, `${spec.id}.r${number}.a${attempt}`, now, now + spec.roundDeadlineMs);
    store.openRound(this.record(round, 'open', ''));
    this.round = round;
    if (spec.secagg) {
      const wanted = Math.ceil(spec.cohortSize * spec.overSelect);
      round.secagg = new SecAggRound(round.id, wanted, spec.minUpdates, this.d.updateLength, this.d.secAggBound, spec.secagg, this.d.signKeyOf, (o) => this.secAggFinished(round, o), this.d.log);
    }
    round.timer = setTimeout(() => this.guarded('closing the round at its deadline', () => this.close('the deadline passed')), spec.roundDeadlineMs);
    this.publish(this.eventOf(this.record(round, 'open', `round ${number} open (attempt ${attempt})`), 'OPEN'));
    this.d.log?.('round open', { program: spec.id, round: number, attempt, roundId: round.id });
  }

  /**
   * Run a timer callback's work: an exception is logged with what was being done and goes no
   * further (a timer callback that throws would end the process). The runner keeps whatever state
   * the step reached: a round whose close threw (e.g. the database failed) stays open in the store,
   * and the next start fails it.
   */
  private guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.d.log?.('round step threw', { program: this.d.spec.id, what, error: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
    }
  }

  private newRound(number: number, attempt: number, id: string, openedMs: number, deadline: number): OpenRound {
    return { number, attempt, id, openedMs, deadline, selected: new Map(), results: [], failures: [], bytes: 0, reports: [], clip: this.clipNorm() };
  }

  /** A device asks for work. */
  checkIn(deviceId: string): WorkOrder | ComeBack {
    const { spec } = this.d;
    if (this.exhausted) return { retryAfterMs: 3_600_000, reason: this.exhausted, programComplete: true };
    if (this.done) return { retryAfterMs: 3_600_000, reason: `program ${spec.id} has completed its ${spec.rounds} rounds`, programComplete: true };
    const r = this.round;
    if (!r || this.aggregating) return { retryAfterMs: Math.max(200, spec.retryDelayMs), reason: 'no round is open; the next one opens shortly', programComplete: false };
    const status = r.selected.get(deviceId);
    if (status === 'working') return this.workFor(r);
    if (status) return { retryAfterMs: Math.max(200, r.deadline - Date.now()), reason: `this device already took part in round ${r.number}`, programComplete: false };
    const full = r.selected.size >= Math.ceil(spec.cohortSize * spec.overSelect) || (r.secagg !== undefined && r.secagg.phase !== 'selecting');
    if (full) return { retryAfterMs: Math.max(200, Math.min(spec.retryDelayMs * 5, r.deadline - Date.now())), reason: `round ${r.number}'s cohort is full`, programComplete: false };
    r.selected.set(deviceId, 'working');
    r.secagg?.select(deviceId);
    return this.workFor(r);
  }

  private workFor(r: OpenRound): WorkOrder {
    const { spec } = this.d;
    const v = this.latest;
    const { mode, noiseMultiplier } = spec.dp;
    const clipNorm = r.clip;
    const deviceNoiseStd = mode === 'local' || mode === 'distributed' ? noiseStd(mode, noiseMultiplier, clipNorm, spec.cohortSize) : 0;
    return { roundId: r.id, adapterVersion: v.version, adapterSha256: v.sha256, adapterBytes: v.sizeBytes, clipNorm, deviceNoiseStd, deadlineUnixMs: r.deadline };
  }

  /**
   * Check that `deviceId` may upload to `roundId` now, before its bytes are read. Throws a
   * CoordinatorError: wrong round (FAILED_PRECONDITION), late (DEADLINE_EXCEEDED), twice (ALREADY_EXISTS).
   */
  expectUpload(deviceId: string, roundId: string): void {
    const r = this.round;
    if (!r || r.id !== roundId || this.aggregating) {
      const past = this.history.some((e) => e.roundId === roundId);
      if (past) refuse('deadline-exceeded', `round ${roundId} has closed; the update came too late`);
      refuse('failed-precondition', `round ${roundId} is not this program's open round${r && !this.aggregating ? ` (${r.id} is)` : ''}`);
    }
    const status = r.selected.get(deviceId);
    if (!status) refuse('failed-precondition', `device ${deviceId} was not selected for round ${roundId}; check in first`);
    if (status === 'done') refuse('already-exists', `device ${deviceId} already sent its update for round ${roundId}`);
    if (status === 'failed') refuse('failed-precondition', `device ${deviceId}'s earlier update for round ${roundId} was rejected`);
    if (Date.now() > r.deadline) refuse('deadline-exceeded', `round ${roundId}'s deadline has passed`);
  }

  /** Accept a validated delta (see expectUpload). */
  submit(deviceId: string, roundId: string, update: Float32Array, numExamples: number, bytes: number, unclipped = true): void {
    this.expectUpload(deviceId, roundId);
    if (this.round?.secagg) refuse('invalid-argument', `program ${this.d.spec.id} uses secure aggregation: send the masked input (encoding "masked")`);
    const r = this.round as OpenRound;
    r.selected.set(deviceId, 'done');
    r.reports.push(unclipped);
    const weight = this.d.spec.dp.mode === 'none' ? numExamples : 1;
    if (this.streams) {
      // FedAvg needs only the weighted sum: fold the update in and let it go
      r.acc ??= new FedAvgAccumulator(update.length);
      r.acc.add(update, weight);
      r.contributors = r.acc.count;
    } else r.results.push({ deviceId, update, numExamples: weight });
    r.bytes += bytes;
    if ((r.contributors ?? r.results.length) >= this.d.spec.cohortSize) this.close('the cohort reported');
    else this.closeIfSettled(r);
  }

  /** A selected device's update was rejected: it counts as a failure of the round. */
  reject(deviceId: string, roundId: string, reason: string): void {
    const r = this.round;
    if (!r || r.id !== roundId || r.selected.get(deviceId) !== 'working') return;
    r.selected.set(deviceId, 'failed');
    r.failures.push({ deviceId, reason });
    this.closeIfSettled(r);
  }

  private closeIfSettled(r: OpenRound): void {
    if (r.secagg) return;
    const full = r.selected.size >= Math.ceil(this.d.spec.cohortSize * this.d.spec.overSelect);
    if (full && [...r.selected.values()].every((s) => s !== 'working')) this.close('every selected device answered');
  }

  private close(why: string): void {
    const r = this.round;
    if (!r || this.aggregating || this.stopped) return;
    if (r.timer) clearTimeout(r.timer);
    r.secagg?.stop();
    const { spec, store } = this.d;
    for (const [id, s] of r.selected) if (s === 'working') r.failures.push({ deviceId: id, reason: 'no update by the close' });
    const contributors = r.contributors ?? r.results.length;
    if (contributors < spec.minUpdates) {
      const msg = `round ${r.number} failed: ${contributors} update(s) by the close (${why}), fewer than the minimum ${spec.minUpdates}; retrying`;
      const rec = this.record(r, 'failed', msg);
      store.failRound(rec);
      this.round = undefined;
      this.publish(this.eventOf(rec, 'FAILED'));
      this.d.log?.('round failed', { program: spec.id, round: r.number, attempt: r.attempt, updates: contributors });
      this.retryTimer = setTimeout(() => this.guarded('opening the next attempt', () => this.open(r.attempt + 1)), spec.retryDelayMs);
      return;
    }
    this.aggregating = true;
    if (r.acc) r.results.push({ deviceId: `fedavg-mean:${r.acc.count}`, update: r.acc.mean(), numExamples: r.acc.weight });
    if (this.private) {
      // the spend is durable before any aggregate exists: a crash can only over-count
      const step = { q: this.sampleRate(), sigma: this.roundSigma(contributors) };
      const after = epsilonOfSteps([...this.ledger, step], spec.dp.delta).epsilon;
      store.appendLedger({ programId: spec.id, roundId: r.id, roundNumber: r.number, q: step.q, sigma: step.sigma, epsilonAfter: after, delta: spec.dp.delta });
      this.ledger.push(step);
      this.spent = after;
      if (process.env.FEDTUNE_TEST_CRASH_AFTER_LEDGER === '1') process.kill(process.pid, 'SIGKILL'); // crash-test hook
    }
    this.publish(this.eventOf(this.record(r, 'open', `aggregating ${contributors} update(s) (${why})`), 'AGGREGATING'));
    try {
      const agg = this.strategyForRound().aggregate(r.number, this.global, r.results, r.failures);
      if (this.adaptive && r.reports.length) this.adaptive.update(r.reports, this.d.rng);
      const tensors = adapterTensorsFromFlat(this.d.baseConfig, spec.lora, agg.global);
      const blob = this.d.blobs.put(encodeAdapterTensors({ baseSha256: this.d.baseSha256, lora: spec.lora, baseConfig: this.d.baseConfig }, tensors));
      const version = this.latest.version + 1;
      const rec = { ...this.record(r, 'completed', `round ${r.number} completed with ${contributors} update(s) (${why})`), adapterVersion: version };
      store.completeRound(rec, { version, sha256: blob.sha256, sizeBytes: blob.size });
      this.latest = { version, sha256: blob.sha256, sizeBytes: blob.size, roundNumber: r.number };
      this.global = agg.global;
      this.completed += 1;
      this.round = undefined;
      this.aggregating = false;
      this.publish(this.eventOf(rec, 'COMPLETED'));
      this.d.log?.('round completed', { program: spec.id, round: r.number, version, updates: contributors, bytes: r.bytes, epsilon: this.spent });
      if (this.done) this.subject.complete();
      else setImmediate(() => this.guarded('opening the next round', () => this.open(1)));
    } catch (e) {
      // an aggregation that cannot finish fails the round; the global adapter is untouched
      this.aggregating = false;
      const rec = this.record(r, 'failed', `round ${r.number} failed while aggregating: ${(e as Error).message}; retrying`);
      store.failRound(rec);
      this.round = undefined;
      this.publish(this.eventOf(rec, 'FAILED'));
      this.retryTimer = setTimeout(() => this.guarded('opening the next attempt', () => this.open(r.attempt + 1)), spec.retryDelayMs);
    }
  }

  /**
   * True when rounds can aggregate as updates arrive: plain FedAvg (any server optimizer) with no
   * robust rule, no central noise (which needs the unweighted sum of clipped updates) and no SecAgg.
   */
  private get streams(): boolean {
    const { spec } = this.d;
    return spec.aggregation === 'fedavg' && !spec.robust && spec.dp.mode !== 'central' && !spec.secagg;
  }

  /** The clip bound of round `roundId` if it is the open one, else the current C. */
  roundClipNorm(roundId: string): number {
    return this.round?.id === roundId ? this.round.clip : this.clipNorm();
  }

  /** The clip bound C of the current round (adaptive clipping moves it between rounds). */
  clipNorm(): number {
    return this.adaptive?.clip ?? this.d.spec.dp.clipNorm;
  }

  /**
   * The strategy of this round: with adaptive clipping under central DP, the central-noise
   * wrapper uses this round's C and the update's share z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2) of the noise.
   */
  private strategyForRound(): Strategy {
    const { spec } = this.d;
    if (!this.adaptive || spec.dp.mode !== 'central' || !spec.dp.adaptiveClip) return this.strategy;
    const z = spec.dp.noiseMultiplier;
    const zDelta = (z ** -2 - (2 * spec.dp.adaptiveClip.countNoiseStd) ** -2) ** -0.5;
    return wrapStrategy(spec, this.inner, this.d.rng, this.round?.clip ?? this.clipNorm(), zDelta);
  }

  /** The open round's secure aggregation, for the SecAgg RPC. */
  secAggRound(roundId: string): SecAggRound {
    const r = this.round;
    if (!r || r.id !== roundId || this.aggregating) {
      if (this.history.some((e) => e.roundId === roundId)) refuse('deadline-exceeded', `round ${roundId} has closed`);
      refuse('failed-precondition', `round ${roundId} is not this program's open round`);
    }
    if (!r.secagg) refuse('failed-precondition', `program ${this.d.spec.id} does not use secure aggregation`);
    return r.secagg;
  }

  /** A selected device's masked input (SecAgg step 3, through UploadUpdate). */
  acceptMasked(deviceId: string, roundId: string, y: Uint32Array, bytes: number): void {
    this.expectUpload(deviceId, roundId);
    const r = this.round as OpenRound;
    this.secAggRound(roundId).maskedInput(deviceId, y, bytes);
    r.selected.set(deviceId, 'done');
  }

  private secAggFinished(r: OpenRound, o: SecAggOutcome): void {
    if (this.round !== r || this.aggregating) return;
    if (!o.ok) {
      r.contributors = 0;
      return this.close(o.reason);
    }
    // the mean of the survivors' (packed) updates, expanded to the flat adapter: one result
    const mean = o.sum.map((v) => v / o.survivors.length);
    r.results.push({ deviceId: `secagg:${o.survivors.length}`, update: this.d.expand(mean), numExamples: o.survivors.length });
    r.contributors = o.survivors.length;
    r.bytes = o.bytesUp;
    this.close('secure aggregation finished');
  }

  private record(r: OpenRound, state: StoredRound['state'], message: string): StoredRound {
    const { spec } = this.d;
    return {
      programId: spec.id,
      roundId: r.id,
      roundNumber: r.number,
      attempt: r.attempt,
      state,
      adapterVersion: this.latest.version,
      updates: r.contributors ?? r.results.length,
      selected: r.selected.size,
      failed: r.failures.length,
      bytesReceived: r.bytes,
      clipNorm: r.clip,
      noiseMultiplier: spec.dp.mode === 'none' ? 0 : spec.dp.noiseMultiplier,
      epsilonSpent: this.epsilonSpent(),
      message,
      openedMs: r.openedMs,
      closedMs: state === 'open' ? 0 : Date.now(),
    };
  }

  private eventOf(r: StoredRound, state: RoundStateName): RoundEventRecord {
    return {
      programId: r.programId,
      roundNumber: r.roundNumber,
      roundId: r.roundId,
      state,
      adapterVersion: r.adapterVersion,
      updatesReceived: r.updates,
      epsilonSpent: r.epsilonSpent,
      message: r.message,
      timeUnixMs: r.closedMs || Date.now(),
      clipNorm: r.clipNorm,
      noiseMultiplier: r.noiseMultiplier,
      bytesReceived: r.bytesReceived,
      devicesSelected: r.selected,
      devicesFailed: r.failed,
    };
  }

  private publish(e: RoundEventRecord): void {
    if (e.state === 'COMPLETED' || e.state === 'FAILED') this.history.push(e);
    this.subject.next(e);
  }
}

/**
 * `inner` wrapped by the program's robust rule, or by central DP with clip C and noise multiplier
 * z (the config refuses the combinations that make no sense).
 */
function wrapStrategy(spec: ProgramSpec, inner: Strategy, rng: Rng, clipNorm: number, noiseMultiplier: number): Strategy {
  if (spec.robust) return new RobustStrategy(inner, spec.robust);
  if (spec.dp.mode === 'central') return new CentralDpStrategy(inner, { clipNorm, noiseMultiplier, expectedClients: spec.cohortSize, rng });
  return inner;
}

/** The strategy under any wrapper: FedAvg with the program's server optimizer, or exact ΔW. */
function innerStrategyFor(spec: ProgramSpec, baseConfig: LlamaConfig): Strategy {
  return spec.aggregation === 'exact-dw' ? new ExactDeltaWStrategy(flatLayout(baseConfig, spec.lora).segments, spec.lora.rank) : new FedAvgStrategy({ optimizer: spec.serverOptimizer });
}
