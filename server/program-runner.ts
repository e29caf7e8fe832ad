/**
 * One program's rounds as an explicit state machine, with its events as an rxjs Observable:
 *
 *   idle ──open──▶ OPEN ──enough updates / all answered / deadline──▶ AGGREGATING ──▶ COMPLETED ─▶ next round
 *    │               └── fewer than minUpdates or minContributors at close ──▶ FAILED ─(retryDelayMs)─▶ same round, next attempt
 *    │                   AGGREGATING ── aggregate fails or may not be published ──▶ FAILED (the old version stays)
 *    └── the privacy budget refuses the round ──▶ FAILED, program done (or waits while fewer devices than declared are enrolled)
 *
 * Devices are selected as they check in (up to ceil(cohortSize × overSelect) per round); the
 * round closes as soon as cohortSize updates arrive, when every selected device has answered
 * and the selection is full, or at the deadline. The parts it drives: PrivacyBudget (ledger,
 * ε, admission), RoundPlanner (each round's strategy and what devices are asked), the publish
 * check (round-plan.ts). The new adapter's blob is written, then the version and the round's
 * completion (with the strategy's metrics) are committed in one transaction, and only then is
 * the event published.
 */
import { Observable, Subject, concat, defer, from } from 'rxjs';
import { filter } from 'rxjs/operators';
import { FedAvgAccumulator, type ClientFailure, type ClientResult, type RoundPlan, type Strategy } from '../aggregators/index.js';
import { encodeAdapterTensors } from '../model/adapter-file.js';
import { adapterTensorsFromFlat } from '../model/adapter-flat.js';
import type { LlamaConfig } from '../model/config.js';
import type { Rng } from '../random/rng.js';
import type { BlobStore } from './blob-store.js';
import { refuse } from './errors.js';
import { PrivacyBudget } from './privacy-budget.js';
import { publishRefusal, RoundPlanner } from './round-plan.js';
import { SecAggRound, type SecAggOutcome } from './secagg-round.js';
import type { ProgramSpec } from './program-config.js';
import type { LedgerEntry, Store, StoredRound, StoredVersion } from './store.js';
import type { ProgramReleases } from './releases.js';
import { eventOf, type ComeBack, type RejectionRecord, type RoundEventRecord, type RunnerStatus, type WorkOrder } from './round-events.js';
import { expandUpdate, type UpdateLayout } from './update-intake.js';
import { childLog, type LogSink } from './log.js';
import type { RoundEvaluator, RoundEvalResult } from './eval/evaluator.js';

export type { ComeBack, RejectionRecord, RoundEventRecord, RoundStateName, RunnerStatus, WorkOrder } from './round-events.js';

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
  /** What devices are asked this round (clip bound C, device noise std), from the round's strategy. */
  readonly plan: RoundPlan;
  /** The round's strategy (the program's, wrapped for this round's C). */
  readonly strategy: Strategy;
  /** Plain FedAvg rounds stream: updates are folded in as they arrive (O(adapter) memory). */
  acc?: FedAvgAccumulator;
  /** The round's log: every line carries program, round and roundId (a pino child logger). */
  readonly log?: LogSink;
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
  /** Where an update's (packed) values go in the flat adapter. */
  readonly layout: UpdateLayout;
  /** SecAgg: values are clamped to ±this before fixed-point encoding. */
  readonly secAggBound: number;
  /** A device's Ed25519 public key (SecAgg adverts are signed with it). */
  readonly signKeyOf: (deviceId: string) => Uint8Array;
  readonly log?: LogSink;
  /**
   * Server-side evaluation (server/eval/): each new adapter's held-out loss, computed off the
   * event loop; the round's COMPLETED event waits for it and carries it. None by default.
   */
  readonly evaluator?: RoundEvaluator;
  /** Observers of the round's durable steps (audit, metrics, fault injection); none by default. */
  readonly hooks?: RunnerHooks;
  /** The program's signed releases: each version gets one in its commit; no round opens while one awaits its signature. */
  readonly releases?: ProgramReleases;
  /** The version rounds start from (a rollback's target); default the newest. `global` holds its values. */
  readonly current?: StoredVersion;
}

/** Observers called synchronously at a round's durable steps. */
export interface RunnerHooks {
  /** A round's privacy spend is on disk and its aggregate not yet computed. */
  readonly afterLedger?: (entry: LedgerEntry) => void;
}

/** Runs one program's rounds. */
export class ProgramRunner {
  private readonly subject = new Subject<RoundEventRecord>();
  private readonly rejected = new Subject<RejectionRecord>();
  private readonly history: RoundEventRecord[] = [];
  private readonly planner: RoundPlanner;
  private readonly budget: PrivacyBudget;
  private global: Float32Array;
  /** The current version's record (kept in memory: every check-in needs it); after a rollback, older than the newest. */
  private latest: StoredVersion;
  /** The highest version number ever made (the next version is this + 1). */
  private newest: number;
  private completed: number;
  private round?: OpenRound;
  private aggregating = false;
  private stopped = false;
  /** Why no further round may run (privacy budget), if so. */
  private exhausted?: string;
  /** Why the next round waits (privacy budget until more devices enrol), if so. */
  private waiting?: string;
  private retryTimer?: NodeJS.Timeout;
  /** Why an administrator paused the program (no new round opens), if so; and the attempt that waits. */
  private paused?: string;
  private pausedAttempt?: number;
  /** Why an administrator stopped the program for good, if so. */
  private halted?: string;
  /** The server-side evaluation in flight, if any (tests and shutdown wait for it). */
  private evaluating?: Promise<void>;

  constructor(private readonly d: RunnerDeps) {
    const { spec, store } = d;
    this.global = d.global;
    this.newest = store.latestVersion(spec.id).version;
    this.latest = d.current ?? store.latestVersion(spec.id);
    this.completed = store.completedRounds(spec.id);
    // adaptive clipping resumes at the C the last completed round used (the update after it is not stored)
    const lastClip = store.rounds(spec.id).filter((x) => x.state === 'completed').pop()?.clipNorm;
    this.planner = new RoundPlanner(spec, d.baseConfig, d.rng, lastClip);
    this.budget = new PrivacyBudget(spec, store);
    for (const r of store.rounds(spec.id)) if (r.state !== 'open') this.history.push(eventOf(r, r.state === 'completed' ? 'COMPLETED' : 'FAILED'));
  }

  /** ε spent so far at the program's δ (0 without DP). */
  epsilonSpent(): number {
    return this.budget.spent();
  }

  /** Every update a round did not take, from now on (see RejectionRecord). */
  get rejections$(): Observable<RejectionRecord> {
    return this.rejected.asObservable();
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

  /** The current adapter version's record (what rounds train from). */
  get latestVersion(): StoredVersion {
    return this.latest;
  }

  /** The open round (id and number) while it takes check-ins and updates; undefined otherwise. */
  get openRound(): { readonly id: string; readonly number: number } | undefined {
    return this.round && !this.aggregating ? { id: this.round.id, number: this.round.number } : undefined;
  }

  /** True while a round's aggregate is being computed. */
  get isAggregating(): boolean {
    return this.aggregating;
  }

  /** The highest version number the program has made (a device may hold it after a rollback). */
  get newestVersion(): number {
    return this.newest;
  }

  /**
   * Make `v` (with values `global`) the version rounds start from — a published rollback. An
   * open round is failed (its updates are deltas from the version rolled back); during
   * aggregation it throws (try again once the round has closed).
   */
  rollbackTo(v: StoredVersion, global: Float32Array): void {
    if (this.aggregating) throw new Error(`program ${this.d.spec.id} is aggregating a round; the rollback waits`);
    this.latest = v;
    this.global = global;
    const r = this.round;
    if (r) {
      if (r.timer) clearTimeout(r.timer);
      r.secagg?.stop();
      this.fail(r, `round ${r.number} failed: the program rolled back to adapter version ${v.version}; retrying`);
    }
  }

  /** Resolves once the server-side evaluation in flight (if any) has been recorded and published. */
  evaluationSettled(): Promise<void> {
    return this.evaluating ?? Promise.resolve();
  }

  /** The newest completed round's server-side evaluation (held-out loss, …), if the program has one. */
  latestEvaluation(): { roundNumber: number; heldoutLoss: number; baseTextLoss?: number } | undefined {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const e = this.history[i];
      if (e.state === 'COMPLETED' && e.heldoutLoss !== undefined) return { roundNumber: e.roundNumber, heldoutLoss: e.heldoutLoss, baseTextLoss: e.baseTextLoss };
    }
    return undefined;
  }

  /** Rounds completed so far. */
  get completedRounds(): number {
    return this.completed;
  }

  /** True once every round has completed, the privacy budget allows no more, or an administrator stopped the program. */
  get done(): boolean {
    return this.completed >= this.d.spec.rounds || this.exhausted !== undefined;
  }

  /** The program's state for operators (dashboard, admin). */
  status(): RunnerStatus {
    if (this.halted) return { state: 'stopped', reason: this.halted };
    if (this.done) return { state: 'completed', reason: this.exhausted ?? `completed its ${this.d.spec.rounds} rounds` };
    if (this.paused) return { state: 'paused', reason: this.paused + (this.round ? `; round ${this.round.number} runs to its close` : '') };
    if (this.waiting) return { state: 'waiting', reason: this.waiting };
    return { state: 'running', reason: this.round ? `round ${this.round.number} is ${this.aggregating ? 'aggregating' : 'open'}` : 'the next round opens shortly' };
  }

  /** Open no new round until resume() (the open round, if any, runs to its close). Idempotent. */
  pause(reason: string): void {
    if (this.halted) throw new RangeError(`ProgramRunner.pause: program ${this.d.spec.id} was stopped`);
    this.paused = reason;
  }

  /** Undo pause(): the waiting round opens now. */
  resume(): void {
    if (this.halted) throw new RangeError(`ProgramRunner.resume: program ${this.d.spec.id} was stopped; a stopped program does not resume`);
    this.paused = undefined;
    const attempt = this.pausedAttempt;
    this.pausedAttempt = undefined;
    if (attempt !== undefined && !this.round && !this.aggregating && !this.done) this.open(attempt);
  }

  /**
   * Stop the program for good: the open round fails (its updates are not aggregated; during
   * aggregation, that round still completes), no further round opens, and devices are told the
   * program is over. Idempotent.
   */
  halt(reason: string): void {
    if (this.halted) return;
    this.halted = reason;
    this.exhausted = reason;
    this.paused = undefined;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const r = this.round;
    if (r && !this.aggregating) {
      if (r.timer) clearTimeout(r.timer);
      r.secagg?.stop();
      this.fail(r, `round ${r.number} failed: ${reason}`);
    }
    if (!this.aggregating) this.subject.complete();
  }

  /**
   * A device may take part no more (revoked): if it is working in the open round, its update is
   * dropped (the round counts it failed, kind "revoked"). An update already taken stays in the round.
   */
  drop(deviceId: string, reason: string): void {
    const r = this.round;
    if (r && !this.aggregating) this.reject(deviceId, r.id, reason, 'revoked');
  }

  /**
   * Close the open round now with the updates it has, as its deadline would (a simulation whose
   * sampled devices have all answered or dropped out). Returns false when no round is open.
   */
  closeNow(why: string): boolean {
    if (!this.round || this.aggregating || this.round.secagg) return false;
    this.close(why);
    return true;
  }

  /**
   * Secure-aggregation rounds: end the selection now with the devices selected so far (every
   * device a simulation sampled has checked in), instead of at the phase timeout. Returns false
   * when no such round is selecting.
   */
  closeSelection(): boolean {
    const s = this.round?.secagg;
    if (!s || s.phase !== 'selecting') return false;
    s.closeSelection();
    return true;
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
    this.d.evaluator?.close();
  }

  private nextAttempt(): number {
    const number = this.completed + 1;
    return this.d.store.rounds(this.d.spec.id).filter((r) => r.roundNumber === number).length + 1;
  }

  private open(attempt: number): void {
    if (this.stopped || this.halted) return;
    if (this.paused) {
      this.pausedAttempt = attempt;
      return;
    }
    const { spec, store } = this.d;
    const number = this.completed + 1;
    const now = Date.now();
    this.waiting = undefined;
    const unsigned = this.d.releases?.awaiting();
    if (unsigned) {
      // a human signs each release: the next round starts from a published version only
      this.waiting = unsigned;
      this.retryTimer = setTimeout(() => this.guarded('opening the round after waiting for a release signature', () => this.open(attempt)), Math.max(500, Math.min(spec.retryDelayMs, 2000)));
      return;
    }
    const refusal = this.budget.refusal(number);
    if (refusal && !refusal.final) {
      // fewer devices than declared are enrolled: the cohort would be drawn from them (a higher q)
      this.waiting = refusal.reason;
      childLog(this.d.log, { program: spec.id, round: number })?.('round waits for enrolments', { reason: refusal.reason });
      this.retryTimer = setTimeout(() => this.guarded('opening the round after waiting for enrolments', () => this.open(attempt)), Math.max(1000, spec.retryDelayMs));
      return;
    }
    if (refusal) {
      this.exhausted = refusal.reason;
      childLog(this.d.log, { program: spec.id, round: number, roundId: `${spec.id}.r${number}.budget` })?.('budget exhausted', { budget: spec.dp.epsilonBudget });
      this.publish(eventOf(this.record(this.newRound(number, 0, `${spec.id}.r${number}.budget`, now, now), 'failed', this.exhausted), 'FAILED'));
      this.subject.complete();
      return;
    }
    const round = this.newRound(number, attempt, `${spec.id}.r${number}.a${attempt}`, now, now + spec.roundDeadlineMs);
    store.openRound(this.record(round, 'open', ''));
    this.round = round;
    if (spec.secagg) {
      const wanted = Math.ceil(spec.cohortSize * spec.overSelect);
      round.secagg = new SecAggRound(round.id, wanted, spec.minUpdates, this.d.layout.updateLength, this.d.secAggBound, spec.secagg, this.d.signKeyOf, (o) => this.secAggFinished(round, o), round.log);
    }
    round.timer = setTimeout(() => this.guarded('closing the round at its deadline', () => this.close('the deadline passed')), spec.roundDeadlineMs);
    this.publish(eventOf(this.record(round, 'open', `round ${number} open (attempt ${attempt})`), 'OPEN'));
    round.log?.('round open', { attempt });
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
      (this.round?.log ?? childLog(this.d.log, { program: this.d.spec.id }))?.('round step threw', { what, error: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
    }
  }

  private newRound(number: number, attempt: number, id: string, openedMs: number, deadline: number): OpenRound {
    const { plan, strategy } = this.planner.plan(number);
    const log = childLog(this.d.log, { program: this.d.spec.id, round: number, roundId: id });
    return { number, attempt, id, openedMs, deadline, selected: new Map(), results: [], failures: [], bytes: 0, reports: [], plan, strategy, log };
  }

  /** A device asks for work. */
  checkIn(deviceId: string): WorkOrder | ComeBack {
    const { spec } = this.d;
    if (this.exhausted) return { retryAfterMs: 3_600_000, reason: this.exhausted, programComplete: true };
    if (this.done) return { retryAfterMs: 3_600_000, reason: `program ${spec.id} has completed its ${spec.rounds} rounds`, programComplete: true };
    if (this.waiting) return { retryAfterMs: Math.max(1000, spec.retryDelayMs), reason: this.waiting, programComplete: false };
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
    const v = this.latest;
    const { clipNorm, deviceNoiseStd } = r.plan;
    return { roundId: r.id, adapterVersion: v.version, adapterSha256: v.sha256, adapterBytes: v.sizeBytes, clipNorm, deviceNoiseStd, deadlineUnixMs: r.deadline };
  }

  /**
   * The one answer to "may this device upload to this round now?". The upload handler asks it
   * on the header, before the bytes are read; submit and acceptMasked ask it again as they
   * commit (the round may have closed while the bytes streamed). Throws a CoordinatorError:
   * wrong round (FAILED_PRECONDITION), late (DEADLINE_EXCEEDED), twice (ALREADY_EXISTS).
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
    if (this.planner.streams) {
      // FedAvg needs only the weighted sum: fold the update in and let it go
      r.acc ??= new FedAvgAccumulator(update.length);
      r.acc.add(update, weight);
      r.contributors = r.acc.count;
    } else r.results.push({ deviceId, update, numExamples: weight });
    r.bytes += bytes;
    if ((r.contributors ?? r.results.length) >= this.d.spec.cohortSize) this.close('the cohort reported');
    else this.closeIfSettled(r);
  }

  /** A selected device's update was rejected (`kind`: the refusal's kind, see RejectionRecord): it counts as a failure of the round. */
  reject(deviceId: string, roundId: string, reason: string, kind = 'rejected'): void {
    const r = this.round;
    if (!r || r.id !== roundId || r.selected.get(deviceId) !== 'working') return;
    r.selected.set(deviceId, 'failed');
    r.failures.push({ deviceId, reason });
    this.rejected.next({ programId: this.d.spec.id, roundId, roundNumber: r.number, deviceId, kind, reason, timeUnixMs: Date.now() });
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
    for (const [id, s] of r.selected) {
      if (s !== 'working') continue;
      r.failures.push({ deviceId: id, reason: 'no update by the close' });
      this.rejected.next({ programId: spec.id, roundId: r.id, roundNumber: r.number, deviceId: id, kind: 'no-update', reason: 'no update by the close', timeUnixMs: Date.now() });
    }
    const contributors = r.contributors ?? r.results.length;
    const short =
      contributors < spec.minUpdates
        ? `fewer than the minimum ${spec.minUpdates}`
        : contributors < spec.minContributors
          ? `fewer than minContributors ${spec.minContributors} (one device's update is never published as the adapter)`
          : undefined;
    if (short) return this.fail(r, `round ${r.number} failed: ${contributors} update(s) by the close (${why}), ${short}; retrying`);
    this.aggregating = true;
    if (r.acc) r.results.push({ deviceId: `fedavg-mean:${r.acc.count}`, update: r.acc.mean(), numExamples: r.acc.weight });
    // the spend is durable before any aggregate exists: a crash can only over-count
    const entry = this.budget.charge(r.id, r.number, contributors);
    if (entry) this.d.hooks?.afterLedger?.(entry);
    this.publish(eventOf(this.record(r, 'open', `aggregating ${contributors} update(s) (${why})`), 'AGGREGATING'));
    let committed = false;
    try {
      const agg = r.strategy.aggregate(r.number, this.global, r.results, r.failures);
      const refusal = publishRefusal(agg.global, contributors, spec.minContributors);
      if (refusal) throw new Error(`${refusal}; the aggregate is not published`);
      const tensors = adapterTensorsFromFlat(this.d.baseConfig, spec.lora, agg.global);
      const blob = this.d.blobs.put(encodeAdapterTensors({ baseSha256: this.d.baseSha256, lora: spec.lora, baseConfig: this.d.baseConfig }, tensors));
      const version = this.newest + 1;
      const rec = { ...this.record(r, 'completed', `round ${r.number} completed with ${contributors} update(s) (${why})`), adapterVersion: version, metrics: agg.metrics };
      const release = this.d.releases?.forVersion({ version, sha256: blob.sha256, sizeBytes: blob.size, roundNumber: r.number }, 'version', this.epsilonSpent());
      store.completeRound(rec, { version, sha256: blob.sha256, sizeBytes: blob.size }, release);
      committed = true;
      this.newest = version;
      if (release) this.d.releases?.mirror(release);
      this.planner.afterRound(r.reports);
      this.latest = { version, sha256: blob.sha256, sizeBytes: blob.size, roundNumber: r.number };
      this.global = agg.global;
      this.completed += 1;
      this.round = undefined;
      this.aggregating = false;
      const finish = (ev?: RoundEvalResult): void => {
        if (this.stopped) return;
        const evaluated = ev ? { ...rec, metrics: { ...rec.metrics, ...ev } } : rec;
        if (ev) store.recordRoundEval(r.id, ev);
        this.publish(eventOf(evaluated, 'COMPLETED'));
        r.log?.('round completed', { version, updates: contributors, bytes: r.bytes, epsilon: this.epsilonSpent(), ...ev });
        if (this.done) this.subject.complete();
        else setImmediate(() => this.guarded('opening the next round', () => this.open(1)));
      };
      // the new adapter's held-out loss, computed in a worker thread: the COMPLETED event carries it
      if (this.d.evaluator) {
        this.evaluating = this.d.evaluator.evaluate(agg.global, r.number).then(
          (ev) => this.guarded('recording the server-side evaluation', () => finish(ev)),
          (e: unknown) => {
            r.log?.('server evaluation failed', { error: e instanceof Error ? e.message : String(e) });
            this.guarded('completing the round after a failed evaluation', () => finish());
          },
        );
      } else finish();
    } catch (e) {
      if (committed) throw e; // the version is durable; what failed after it is the caller's to log (guarded)
      // an aggregation that cannot finish, or may not be published, fails the round; the global
      // adapter and the strategy's own state (server-optimizer moments) are untouched
      r.strategy.rollback?.();
      this.aggregating = false;
      this.fail(r, `round ${r.number} failed while aggregating: ${(e as Error).message}; retrying`);
    }
  }

  /** Fail the open round with `message`, keep the current version, and retry after retryDelayMs. */
  private fail(r: OpenRound, message: string): void {
    const { spec } = this.d;
    const rec = this.record(r, 'failed', message);
    this.d.store.failRound(rec);
    this.round = undefined;
    this.publish(eventOf(rec, 'FAILED'));
    r.log?.('round failed', { attempt: r.attempt, updates: rec.updates, reason: message });
    if (this.halted) return this.subject.complete();
    this.retryTimer = setTimeout(() => this.guarded('opening the next attempt', () => this.open(r.attempt + 1)), spec.retryDelayMs);
  }

  /** The deadline of round `roundId` (ms since the epoch) if it is the open one, else undefined. */
  roundDeadline(roundId: string): number | undefined {
    return this.round?.id === roundId ? this.round.deadline : undefined;
  }

  /** The clip bound of round `roundId` if it is the open one, else the current C (0 = none). */
  roundClipNorm(roundId: string): number {
    return this.round?.id === roundId ? this.round.plan.clipNorm : this.clipNorm();
  }

  /** The std of the noise devices add themselves in round `roundId` (0 unless it is the open round under local / distributed DP). */
  roundDeviceNoiseStd(roundId: string): number {
    return this.round?.id === roundId ? this.round.plan.deviceNoiseStd : 0;
  }

  /** The clip bound C of the current round (adaptive clipping moves it between rounds; 0 = none). */
  clipNorm(): number {
    return this.round?.plan.clipNorm ?? this.planner.clipNorm();
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
    r.results.push({ deviceId: `secagg:${o.survivors.length}`, update: expandUpdate(this.d.layout, mean), numExamples: o.survivors.length });
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
      clipNorm: r.plan.clipNorm,
      noiseMultiplier: spec.dp.mode === 'none' ? 0 : spec.dp.noiseMultiplier,
      epsilonSpent: this.epsilonSpent(),
      message,
      openedMs: r.openedMs,
      closedMs: state === 'open' ? 0 : Date.now(),
      metrics: {},
    };
  }

  private publish(e: RoundEventRecord): void {
    if (e.state === 'COMPLETED' || e.state === 'FAILED') this.history.push(e);
    this.subject.next(e);
  }
}
