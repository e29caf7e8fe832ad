/**
 * One program's rounds as an explicit state machine, with its events as an rxjs Observable:
 *
 *   idle ──open──▶ OPEN ──enough updates / all answered / deadline──▶ AGGREGATING ──▶ COMPLETED ─▶ next round
 *    │               └── fewer than minUpdates or minContributors at close ──▶ FAILED ─(retryDelayMs)─▶ same round, next attempt
 *    │                   AGGREGATING ── aggregate fails or may not be published ──▶ FAILED (the old version stays)
 *    └── the privacy budget refuses the round ──▶ FAILED, program done (or waits while fewer devices than declared are enrolled)
 *
 * Who takes part is the program's sampling scheme (server/sampling.ts). first-come (no DP):
 * devices are selected as they check in (up to ceil(cohortSize × overSelect) per round); the
 * round closes as soon as cohortSize updates arrive, when every selected device has answered
 * and the selection is full, or at the deadline. poisson: every device that checks in during the
 * selection window (sampling.selectionMs, or until every enrolled device has checked in) gets one
 * Bernoulli(q) coin, with no cap; the round closes once the selection has closed and every
 * sampled device has answered, or at the deadline — never on the first cohortSize updates. Under
 * central DP a Poisson round is released whatever its realised count (the fixed-denominator
 * noised sum the accountant charges; a count gate would be a release it does not cover).
 * fixed-cohort (no DP): min(cohortSize, n) of the n devices that checked in during the window,
 * drawn uniformly when it closes. The parts it drives: PrivacyBudget (ledger,
 * ε, admission), RoundPlanner (each round's strategy and what devices are asked), the publish
 * check (round-plan.ts). The new adapter's blob is written, then the version and the round's
 * completion (with the strategy's metrics) are committed in one transaction, and only then is
 * the event published.
 */
import { Observable, Subject, concat, defer, from, merge } from 'rxjs';
import { filter } from 'rxjs/operators';
import { FedAvgAccumulator, type ClientFailure, type ClientResult, type RoundPlan, type Strategy } from '../aggregators/index.js';
import { encodeAdapterTensors } from '../model/adapter-file.js';
import { adapterTensorsFromFlat } from '../model/adapter-flat.js';
import type { LlamaConfig } from '../model/config.js';
import type { Rng } from '../random/rng.js';
import type { BlobBackend } from './storage/blobs.js';
import { refuse } from './errors.js';
import { PrivacyBudget } from './privacy-budget.js';
import { publishRefusal, RoundPlanner } from './round-plan.js';
import { RoundSampler } from './sampling.js';
import { SecAggRound, type SecAggOutcome } from './secagg-round.js';
import type { ProgramSpec } from './program-config.js';
import type { LedgerEntry, ParticipantStatus, RoundPlanRecord, StateStore, StoredRound, StoredVersion } from './storage/index.js';
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
  /** Who may take part (coins or the fixed-cohort draw); first-come admits everyone until full. */
  readonly sampler: RoundSampler;
  /** When the selection closes (poisson, fixed-cohort), ms since the epoch. */
  readonly selectionEndsMs: number;
  selectionTimer?: NodeJS.Timeout;
  /** Devices enrolled as last counted (the selection closes early once all of them have checked in). */
  enrolled: number;
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
  /** Shared rounds: every device that checked in (any replica), sampled or not — the selection closes once all enrolled have. */
  checkedIn?: Set<string>;
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
  readonly store: StateStore;
  readonly blobs: BlobBackend;
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
  /**
   * Rounds every replica serves (PostgreSQL, server/shared-intake.ts): the round's plan is stored
   * when it opens, admissions and updates are claimed in the database by whichever replica a
   * device reaches (this runner hears of them through noteParticipant), and the close reads the
   * round's updates from the database after closing its intake. Absent: the single-process path.
   */
  readonly shared?: { readonly replicaId: string };
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
  /** Rounds another replica closed (shared rounds, on a replica that does not drive them): watchers hear them, events$ (metrics) does not. */
  private readonly mirrored = new Subject<RoundEventRecord>();
  private readonly history: RoundEventRecord[] = [];
  private planner!: RoundPlanner;
  private budget!: PrivacyBudget;
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

  /** True while a round is being opened (its record is being written). */
  private opening = false;
  /** The round step in flight (opening, aggregating, failing), if any: close() waits for it. */
  private step?: Promise<void>;

  private constructor(
    private readonly d: RunnerDeps,
    newest: StoredVersion,
    rounds: readonly StoredRound[],
    budget: PrivacyBudget,
  ) {
    this.global = d.global;
    // watchers' streams end with the program's (WatchRounds merges the two)
    this.subject.subscribe({ complete: () => this.mirrored.complete() });
    this.latest = d.current ?? newest;
    this.newest = 0;
    this.completed = 0;
    this.resumeFrom(newest, rounds, budget);
  }

  /** Take the program's stored state: versions, closed rounds (history, completed count, the last C), privacy spends. */
  private resumeFrom(newest: StoredVersion, rounds: readonly StoredRound[], budget: PrivacyBudget): void {
    const { spec } = this.d;
    this.newest = newest.version;
    this.completed = rounds.filter((x) => x.state === 'completed').length;
    // adaptive clipping resumes at the C the last completed round used (the update after it is not stored)
    const lastClip = rounds.filter((x) => x.state === 'completed').pop()?.clipNorm;
    this.planner = new RoundPlanner(spec, this.d.baseConfig, this.d.rng, lastClip);
    this.budget = budget;
    this.history.length = 0;
    for (const r of rounds) if (r.state !== 'open') this.history.push(eventOf(r, r.state === 'completed' ? 'COMPLETED' : 'FAILED'));
  }

  /**
   * Before this replica starts driving a program another one drove (it took the program's
   * lease): read the program's state again — what the former driver completed — and start from
   * version `current` (values `global`). Only for a runner that has not started.
   */
  async takeOver(current: StoredVersion, global: Float32Array): Promise<void> {
    if (this.round || this.opening || this.aggregating) throw new Error(`ProgramRunner.takeOver: program ${this.d.spec.id} is running here already`);
    const { spec, store } = this.d;
    const [newest, rounds, budget] = await Promise.all([store.latestVersion(spec.id), store.rounds(spec.id), PrivacyBudget.load(spec, store)]);
    this.resumeFrom(newest, rounds, budget);
    this.latest = current;
    this.global = global;
  }

  /** A runner resuming the program's stored state (versions, rounds, privacy ledger). */
  static async create(d: RunnerDeps): Promise<ProgramRunner> {
    const { spec, store } = d;
    const [newest, rounds, budget] = await Promise.all([store.latestVersion(spec.id), store.rounds(spec.id), PrivacyBudget.load(spec, store)]);
    return new ProgramRunner(d, newest, rounds, budget);
  }

  /** Resolves once the round step in flight (opening, aggregating, failing a round), if any, has finished. */
  async settled(): Promise<void> {
    while (this.step) await this.step;
  }

  /** Run `fn` as the runner's step in flight (see settled()), logging what it throws (see guarded). */
  private stepping(what: string, fn: () => Promise<void>): void {
    const run: Promise<void> = fn().then(
      () => undefined,
      (e: unknown) => this.logThrown(what, e),
    );
    const tracked = run.finally(() => {
      if (this.step === tracked) this.step = undefined;
    });
    this.step = tracked;
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
    return concat(defer(() => from(this.history.filter((e) => e.roundNumber > afterRound))), merge(this.subject, this.mirrored).pipe(filter((e) => e.roundNumber > afterRound)));
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
      clearRoundTimers(r);
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
    if (attempt !== undefined && !this.round && !this.aggregating && !this.opening && !this.done) this.open(attempt);
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
      clearRoundTimers(r);
      r.secagg?.stop();
      this.fail(r, `round ${r.number} failed: ${reason}`); // its FAILED event completes the stream
      return;
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
  closeRoundNow(why: string): boolean {
    if (!this.round || this.aggregating || this.round.secagg) return false;
    this.close(why);
    return true;
  }

  /**
   * End the open round's selection now instead of at `sampling.selectionMs` (a simulation knows
   * every online device has checked in). Returns false when no round is selecting.
   */
  endSelectionNow(): boolean {
    const r = this.round;
    if (!r || this.aggregating || r.sampler.selectionClosed) return false;
    this.closeSelection(r);
    return true;
  }

  /** Open the next round (resuming after the last completed one). */
  start(): void {
    if (!this.done && !this.round && !this.opening) this.open(this.nextAttempt());
    else if (this.done) this.subject.complete();
  }

  /** Stop timers; an open round is left open in the store and failed at the next start. */
  stop(): void {
    this.stopped = true;
    if (this.round) clearRoundTimers(this.round);
    this.round?.secagg?.stop(); // its phase timers too
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.subject.complete();
    this.d.evaluator?.close();
  }

  private nextAttempt(): number {
    // every stored round is closed once the runner starts (failOpenRounds), and each closed one is in the history
    const number = this.completed + 1;
    return this.history.filter((e) => e.roundNumber === number && e.roundId !== `${this.d.spec.id}.r${number}.budget`).length + 1;
  }

  /** Open round attempt `attempt` (its record written first); a step (see settled()). */
  private open(attempt: number): void {
    if (this.stopped || this.halted || this.opening) return;
    if (this.paused) {
      this.pausedAttempt = attempt;
      return;
    }
    this.opening = true;
    this.stepping('opening the round', async () => {
      try {
        await this.openNow(attempt);
      } finally {
        this.opening = false;
      }
    });
  }

  private async openNow(attempt: number): Promise<void> {
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
    const enrolled = await store.deviceCount(spec.id);
    const round = this.newRound(number, attempt, `${spec.id}.r${number}.a${attempt}`, now, now + spec.roundDeadlineMs, enrolled);
    await store.openRound(this.record(round, 'open', ''), this.d.shared ? this.planRecord(round) : undefined);
    if (this.stopped || this.halted) return; // left open in the store, failed at the next start
    this.round = round;
    if (spec.sampling.scheme !== 'first-come')
      round.selectionTimer = setTimeout(() => this.guarded('closing the round\'s selection', () => this.closeSelection(round)), spec.sampling.selectionMs);
    if (spec.secagg) {
      // poisson has no cap: the secure aggregation's selection closes on its own timer
      const wanted = spec.sampling.scheme === 'poisson' ? Infinity : Math.ceil(spec.cohortSize * spec.overSelect);
      round.secagg = new SecAggRound(round.id, wanted, spec.minUpdates, this.d.layout.updateLength, this.d.secAggBound, spec.secagg, this.d.signKeyOf, (o) => this.secAggFinished(round, o), round.log);
    }
    round.timer = setTimeout(() => this.close('the deadline passed', 'closing the round at its deadline'), Math.max(0, round.deadline - Date.now()));
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
      this.logThrown(what, e);
    }
  }

  private logThrown(what: string, e: unknown): void {
    (this.round?.log ?? childLog(this.d.log, { program: this.d.spec.id }))?.('round step threw', { what, error: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
  }

  private newRound(number: number, attempt: number, id: string, openedMs: number, deadline: number, enrolled = 0): OpenRound {
    const { plan, strategy } = this.planner.plan(number);
    const log = childLog(this.d.log, { program: this.d.spec.id, round: number, roundId: id });
    const { scheme, rate, selectionMs } = this.d.spec.sampling;
    const sampler = new RoundSampler(scheme, rate, this.d.spec.cohortSize, this.d.rng);
    return { number, attempt, id, openedMs, deadline, selected: new Map(), sampler, selectionEndsMs: openedMs + selectionMs, enrolled, results: [], failures: [], bytes: 0, reports: [], plan, strategy, log };
  }

  /** The plan of round `r` as replicas serve it (stored with the round when it opens). */
  private planRecord(r: OpenRound): RoundPlanRecord {
    const { spec } = this.d;
    const firstCome = spec.sampling.scheme === 'first-come';
    return {
      roundId: r.id,
      programId: spec.id,
      roundNumber: r.number,
      adapterVersion: this.latest.version,
      clipNorm: r.plan.clipNorm,
      deviceNoiseStd: r.plan.deviceNoiseStd,
      deadlineMs: r.deadline,
      selectionEndsMs: firstCome ? 0 : r.selectionEndsMs,
      cap: firstCome ? Math.ceil(spec.cohortSize * spec.overSelect) : 0,
      driver: this.d.shared?.replicaId ?? '',
      intakeClosedMs: 0,
    };
  }

  /** Why a device gets no work now (program over, waiting, no round open), or undefined while a round takes check-ins. */
  idleAnswer(): ComeBack | undefined {
    const { spec } = this.d;
    if (this.exhausted) return { retryAfterMs: 3_600_000, reason: this.exhausted, programComplete: true };
    if (this.done) return { retryAfterMs: 3_600_000, reason: `program ${spec.id} has completed its ${spec.rounds} rounds`, programComplete: true };
    if (this.waiting) return { retryAfterMs: Math.max(1000, spec.retryDelayMs), reason: this.waiting, programComplete: false };
    if (!this.round || this.aggregating) return { retryAfterMs: Math.max(200, spec.retryDelayMs), reason: 'no round is open; the next one opens shortly', programComplete: false };
    return undefined;
  }

  /**
   * Shared rounds: a device's status in round `roundId` as the database recorded it, claimed by
   * any replica (this one, or another one's NOTIFY). The driver's view of who is selected and who
   * answered, from which it closes the round early; the close itself reads the database.
   */
  noteParticipant(roundId: string, deviceId: string, status: ParticipantStatus): void {
    const r = this.round;
    if (!this.d.shared || !r || r.id !== roundId || this.aggregating) return;
    (r.checkedIn ??= new Set()).add(deviceId);
    if (status === 'not-sampled') return this.closeSharedSelectionIfAllCheckedIn(r);
    const was = r.selected.get(deviceId);
    if (was === status || was === 'done' || was === 'failed') return;
    r.selected.set(deviceId, status);
    if (status === 'working') {
      this.closeSharedSelectionIfAllCheckedIn(r);
      return this.closeIfSettled(r);
    }
    if (status === 'failed') {
      r.failures.push({ deviceId, reason: 'its update was rejected' });
      return this.closeIfSettled(r);
    }
    r.contributors = (r.contributors ?? 0) + 1;
    if (this.d.spec.sampling.scheme === 'first-come' && r.contributors >= this.d.spec.cohortSize) this.close('the cohort reported');
    else this.closeIfSettled(r);
  }

  /** Shared rounds: every enrolled device has checked in somewhere, so the selection closes now (counted again first). */
  private closeSharedSelectionIfAllCheckedIn(r: OpenRound): void {
    if (r.sampler.scheme === 'first-come' || r.sampler.selectionClosed || (r.checkedIn?.size ?? 0) < r.enrolled) return;
    const { store, spec } = this.d;
    store.deviceCount(spec.id).then(
      (n) => {
        r.enrolled = Math.max(r.enrolled, n);
        if ((r.checkedIn?.size ?? 0) >= r.enrolled) this.closeSelection(r);
      },
      (e: unknown) => this.logThrown('counting enrolled devices', e),
    );
  }

  /**
   * Shared rounds, on a replica that does not drive the program: round `rec` was closed by its
   * driver. Watchers (WatchRounds) hear it, the completed count and newest version follow, and
   * once the program is done the event streams complete (health turns NOT_SERVING). Not counted
   * in events$ (each replica's metrics count the rounds it drove).
   */
  noteClosedElsewhere(rec: StoredRound): void {
    if (rec.state === 'open' || this.round || this.opening || this.aggregating || this.history.some((e) => e.roundId === rec.roundId)) return;
    const e = eventOf(rec, rec.state === 'completed' ? 'COMPLETED' : 'FAILED');
    this.history.push(e);
    if (rec.state === 'completed') {
      this.completed += 1;
      this.newest = Math.max(this.newest, rec.adapterVersion);
    }
    this.mirrored.next(e);
    if (this.done) this.subject.complete();
  }

  /**
   * Shared rounds, on taking a program over: continue round `stored` (open in the database, with
   * its `plan`) rather than failing it — its admissions and acknowledged updates are in the
   * database. If its intake was closed (its driver died aggregating) or its deadline has passed,
   * it is closed and aggregated now. Instead of start(), on a runner that has not started.
   */
  async resumeRound(stored: StoredRound, plan: RoundPlanRecord): Promise<void> {
    if (!this.d.shared) throw new Error(`ProgramRunner.resumeRound: program ${this.d.spec.id} does not share its rounds`);
    if (this.round || this.opening || this.aggregating) throw new Error(`ProgramRunner.resumeRound: program ${this.d.spec.id} has a round here already`);
    const r0 = this.newRound(stored.roundNumber, stored.attempt, stored.roundId, stored.openedMs, plan.deadlineMs, await this.d.store.deviceCount(this.d.spec.id));
    const r: OpenRound = { ...r0, plan: { ...r0.plan, clipNorm: plan.clipNorm, deviceNoiseStd: plan.deviceNoiseStd }, checkedIn: new Set() };
    // the round is ours from here: claims heard while its participants are read are merged in
    this.round = r;
    this.opening = true;
    try {
      for (const [id, status] of await this.d.store.participantStatuses(r.id)) {
        r.checkedIn?.add(id);
        const was = r.selected.get(id);
        if (status === 'not-sampled' || was === 'done' || was === 'failed') continue;
        r.selected.set(id, status);
      }
    } finally {
      this.opening = false;
    }
    if (this.round !== r) return;
    r.contributors = [...r.selected.values()].filter((v) => v === 'done').length;
    r.log?.('round resumed by a new driver', { attempt: r.attempt, selected: r.selected.size, updates: r.contributors, intakeClosed: plan.intakeClosedMs > 0 });
    if (plan.intakeClosedMs > 0 || Date.now() >= r.deadline) return this.close(plan.intakeClosedMs > 0 ? 'resumed after its driver stopped while aggregating' : 'the deadline passed (resumed after its driver stopped)');
    if (this.d.spec.sampling.scheme !== 'first-come') r.selectionTimer = setTimeout(() => this.guarded('closing the round\'s selection', () => this.closeSelection(r)), Math.max(0, r.selectionEndsMs - Date.now()));
    r.timer = setTimeout(() => this.close('the deadline passed', 'closing the round at its deadline'), Math.max(0, r.deadline - Date.now()));
    this.closeSharedSelectionIfAllCheckedIn(r);
    this.closeIfSettled(r);
  }

  /** A device asks for work. */
  checkIn(deviceId: string): WorkOrder | ComeBack {
    const { spec } = this.d;
    const idle = this.idleAnswer();
    if (idle) return idle;
    const r = this.round as OpenRound;
    const status = r.selected.get(deviceId);
    if (status === 'working') return this.workFor(r);
    if (status) return { retryAfterMs: Math.max(200, r.deadline - Date.now()), reason: `this device already took part in round ${r.number}`, programComplete: false };
    if (spec.sampling.scheme !== 'first-come') return this.sampledCheckIn(r, deviceId);
    const full = r.selected.size >= Math.ceil(spec.cohortSize * spec.overSelect) || (r.secagg !== undefined && r.secagg.phase !== 'selecting');
    if (full) return { retryAfterMs: Math.max(200, Math.min(spec.retryDelayMs * 5, r.deadline - Date.now())), reason: `round ${r.number}'s cohort is full`, programComplete: false };
    r.selected.set(deviceId, 'working');
    r.secagg?.select(deviceId);
    return this.workFor(r);
  }

  /** True if the device is selected for the open round (working, done or failed in it). */
  isSelected(deviceId: string): boolean {
    return this.round?.selected.has(deviceId) ?? false;
  }

  /**
   * Withdraw a selection made by checkIn (the database says another replica admitted the device
   * to this round already): the place is free again. Ignored unless the device is still working.
   */
  unselect(deviceId: string, roundId: string): void {
    const r = this.round;
    if (!r || r.id !== roundId || this.aggregating || r.selected.get(deviceId) !== 'working' || r.secagg) return;
    r.selected.delete(deviceId);
  }

  /** checkIn under poisson or fixed-cohort: the device's one coin (or its place in the draw) decides. */
  private sampledCheckIn(r: OpenRound, deviceId: string): WorkOrder | ComeBack {
    const { spec } = this.d;
    const now = Date.now();
    // as first-come's "cohort is full": not before the next round can open, and not in a tight loop
    const untilNext = Math.max(200, Math.min(spec.retryDelayMs * 5, r.deadline - now));
    if (!r.sampler.selectionClosed && (now > r.selectionEndsMs || (r.secagg !== undefined && r.secagg.phase !== 'selecting'))) this.closeSelection(r);
    if (this.round !== r) return { retryAfterMs: Math.max(200, spec.retryDelayMs), reason: 'no round is open; the next one opens shortly', programComplete: false };
    const a = r.sampler.admit(deviceId);
    if (a === 'sampled') {
      r.selected.set(deviceId, 'working');
      r.secagg?.select(deviceId);
      this.closeSelectionIfAllCheckedIn(r);
      return this.workFor(r);
    }
    this.closeSelectionIfAllCheckedIn(r);
    if (a === 'not-sampled') return { retryAfterMs: untilNext, reason: `not sampled for round ${r.number} (${spec.sampling.scheme} sampling); check in for the next round`, programComplete: false };
    if (a === 'pending' && !r.sampler.selectionClosed)
      return { retryAfterMs: Math.max(50, r.selectionEndsMs - now + 50), reason: `round ${r.number}'s cohort is drawn when its selection closes; check in again then`, programComplete: false };
    if (a === 'pending') return this.sampledCheckIn(r, deviceId); // the draw happened just now
    return { retryAfterMs: untilNext, reason: `round ${r.number}'s selection has closed; check in for the next round`, programComplete: false };
  }

  /** Every enrolled device has checked in: no one else can be sampled, so the selection closes now. */
  private closeSelectionIfAllCheckedIn(r: OpenRound): void {
    if (r.sampler.selectionClosed || r.sampler.eligible < r.enrolled) return;
    // counted when the round opened, and again only when it seems reached (enrolments may have come since)
    const { store, spec } = this.d;
    const now = store.deviceCountNow?.(spec.id);
    if (now !== undefined) {
      r.enrolled = now;
      if (r.sampler.eligible >= r.enrolled) this.closeSelection(r);
      return;
    }
    // an engine without synchronous reads (PostgreSQL: other replicas enrol too) counts asynchronously
    store.deviceCount(spec.id).then(
      (n) => {
        r.enrolled = Math.max(r.enrolled, n);
        if (r.sampler.eligible >= r.enrolled) this.closeSelection(r);
      },
      (e: unknown) => this.logThrown('counting enrolled devices', e),
    );
  }

  /** A device enrolled (through this process) while a round may be open: one more that may check in. */
  noteEnrolment(): void {
    if (this.round) this.round.enrolled += 1;
  }

  /** Close round `r`'s selection: fixed-cohort draws its cohort; the round may now be settled. */
  private closeSelection(r: OpenRound): void {
    if (this.round !== r || this.aggregating || r.sampler.selectionClosed) return;
    if (r.selectionTimer) clearTimeout(r.selectionTimer);
    const chosen = r.sampler.closeSelection();
    // shared rounds: no replica claims a coin for this round from now on
    if (this.d.shared) this.d.store.endSelection(r.id).catch((e: unknown) => this.logThrown('ending the round\'s selection in the database', e));
    if (r.sampler.scheme === 'fixed-cohort') for (const id of chosen) if (!r.selected.has(id)) r.selected.set(id, 'working');
    r.log?.('selection closed', { scheme: r.sampler.scheme, eligible: r.sampler.eligible, sampled: r.sampler.sampled });
    r.secagg?.closeSelection();
    this.closeIfSettled(r);
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
    if (this.d.spec.sampling.scheme === 'first-come' && (r.contributors ?? r.results.length) >= this.d.spec.cohortSize) this.close('the cohort reported');
    else this.closeIfSettled(r);
  }

  /** A selected device's update was rejected (`kind`: the refusal's kind, see RejectionRecord): it counts as a failure of the round. */
  reject(deviceId: string, roundId: string, reason: string, kind = 'rejected'): void {
    const r = this.round;
    if (!r || r.id !== roundId || this.aggregating || r.selected.get(deviceId) !== 'working') return;
    r.selected.set(deviceId, 'failed');
    r.failures.push({ deviceId, reason });
    this.rejected.next({ programId: this.d.spec.id, roundId, roundNumber: r.number, deviceId, kind, reason, timeUnixMs: Date.now() });
    this.closeIfSettled(r);
  }

  private closeIfSettled(r: OpenRound): void {
    if (r.secagg || this.round !== r || this.aggregating) return;
    const firstCome = this.d.spec.sampling.scheme === 'first-come';
    const full = firstCome ? r.selected.size >= Math.ceil(this.d.spec.cohortSize * this.d.spec.overSelect) : r.sampler.selectionClosed;
    if (full && [...r.selected.values()].every((s) => s !== 'working')) this.close(firstCome ? 'every selected device answered' : 'the selection closed and every sampled device answered');
  }

  /** Close the open round (`what`: the step's name in a log line should it throw). */
  private close(why: string, what = 'closing the round'): void {
    const r = this.round;
    if (!r || this.aggregating || this.stopped) return;
    clearRoundTimers(r);
    if (!r.sampler.selectionClosed) r.sampler.closeSelection();
    r.secagg?.stop();
    this.aggregating = true; // from here no update joins the round (the rest of the step awaits the database)
    this.stepping(what, () => this.closeNow(r, why));
  }

  private async closeNow(r: OpenRound, why: string): Promise<void> {
    const { spec, store } = this.d;
    const drawnShared = this.d.shared ? await this.takeSharedUpdates(r) : undefined;
    for (const [id, s] of r.selected) {
      if (s !== 'working') continue;
      r.failures.push({ deviceId: id, reason: 'no update by the close' });
      this.rejected.next({ programId: spec.id, roundId: r.id, roundNumber: r.number, deviceId: id, kind: 'no-update', reason: 'no update by the close', timeUnixMs: Date.now() });
    }
    const contributors = r.contributors ?? r.results.length;
    // central DP over a Poisson sample releases the fixed-denominator noised sum whatever the count
    const ungated = spec.sampling.scheme === 'poisson' && spec.dp.mode === 'central';
    const short = ungated
      ? undefined
      : contributors < spec.minUpdates
        ? `fewer than the minimum ${spec.minUpdates}`
        : contributors < spec.minContributors
          ? `fewer than minContributors ${spec.minContributors} (one device's update is never published as the adapter)`
          : undefined;
    if (short) {
      this.aggregating = false;
      return this.failNow(r, `round ${r.number} failed: ${contributors} update(s) by the close (${why}), ${short}; retrying`);
    }
    if (r.acc) r.results.push({ deviceId: `fedavg-mean:${r.acc.count}`, update: r.acc.mean(), numExamples: r.acc.weight });
    // the spend is durable before any aggregate exists: a crash can only over-count
    const drawn = drawnShared ?? (r.sampler.scheme === 'first-come' ? { eligible: r.selected.size, selected: r.selected.size } : { eligible: r.sampler.eligible, selected: r.sampler.sampled });
    let committed = false;
    try {
      const entry = await this.budget.charge(r.id, r.number, contributors, drawn);
      if (entry) this.d.hooks?.afterLedger?.(entry);
      this.publish(eventOf(this.record(r, 'open', `aggregating ${contributors} update(s) (${why})`), 'AGGREGATING'));
      const agg = r.strategy.aggregate(r.number, this.global, r.results, r.failures);
      const refusal = publishRefusal(agg.global, contributors, ungated ? 0 : spec.minContributors);
      if (refusal) throw new Error(`${refusal}; the aggregate is not published`);
      const tensors = adapterTensorsFromFlat(this.d.baseConfig, spec.lora, agg.global);
      const blob = await this.d.blobs.put(encodeAdapterTensors({ baseSha256: this.d.baseSha256, lora: spec.lora, baseConfig: this.d.baseConfig }, tensors));
      const version = this.newest + 1;
      const rec = { ...this.record(r, 'completed', `round ${r.number} completed with ${contributors} update(s) (${why})`), adapterVersion: version, metrics: { ...agg.metrics, eligible: drawn.eligible, sampled: drawn.selected } };
      const release = this.d.releases?.forVersion({ version, sha256: blob.sha256, sizeBytes: blob.size, roundNumber: r.number }, 'version', this.epsilonSpent());
      await store.completeRound(rec, { version, sha256: blob.sha256, sizeBytes: blob.size }, release);
      committed = true;
      this.newest = version;
      if (release) this.d.releases?.mirror(release);
      this.planner.afterRound(r.reports);
      this.latest = { version, sha256: blob.sha256, sizeBytes: blob.size, roundNumber: r.number };
      this.global = agg.global;
      this.completed += 1;
      this.round = undefined;
      this.aggregating = false;
      const finish = async (ev?: RoundEvalResult): Promise<void> => {
        if (this.stopped) return;
        const evaluated = ev ? { ...rec, metrics: { ...rec.metrics, ...ev } } : rec;
        if (ev) await store.recordRoundEval(r.id, ev);
        this.publish(eventOf(evaluated, 'COMPLETED'));
        r.log?.('round completed', { version, updates: contributors, bytes: r.bytes, epsilon: this.epsilonSpent(), ...ev });
        if (this.done) this.subject.complete();
        else setImmediate(() => this.guarded('opening the next round', () => this.open(1)));
      };
      // the new adapter's held-out loss, computed in a worker thread: the COMPLETED event carries it
      if (this.d.evaluator) {
        this.evaluating = this.d.evaluator.evaluate(agg.global, r.number).then(
          (ev) => finish(ev).catch((e: unknown) => this.logThrown('recording the server-side evaluation', e)),
          (e: unknown) => {
            r.log?.('server evaluation failed', { error: e instanceof Error ? e.message : String(e) });
            return finish().catch((e2: unknown) => this.logThrown('completing the round after a failed evaluation', e2));
          },
        );
      } else await finish();
    } catch (e) {
      if (committed) throw e; // the version is durable; what failed after it is the caller's to log (guarded)
      // an aggregation that cannot finish, or may not be published, fails the round; the global
      // adapter and the strategy's own state (server-optimizer moments) are untouched
      r.strategy.rollback?.();
      this.aggregating = false;
      await this.failNow(r, `round ${r.number} failed while aggregating: ${(e as Error).message}; retrying`);
    }
  }

  /**
   * Shared rounds: close the round's intake in the database (waiting for acceptances in flight on
   * every replica; any later one is refused), then take what the database holds — every
   * participant's status and every acknowledged update — as the round's selection, failures and
   * results (folded as they are read when the strategy streams). Returns the sampling drawn.
   */
  private async takeSharedUpdates(r: OpenRound): Promise<{ eligible: number; selected: number }> {
    const { store, spec } = this.d;
    await store.closeIntake(r.id);
    const statuses = await store.participantStatuses(r.id);
    const reasons = new Map(r.failures.map((f) => [f.deviceId, f.reason]));
    r.selected.clear();
    r.failures.length = 0;
    for (const [id, status] of statuses) {
      if (status === 'not-sampled') continue;
      r.selected.set(id, status);
      if (status === 'failed') r.failures.push({ deviceId: id, reason: reasons.get(id) ?? 'its update was rejected' });
    }
    r.reports.length = 0;
    r.results.length = 0;
    r.bytes = 0;
    r.acc = undefined;
    // a streaming strategy folds the updates page by page (memory: one page and the sum); the others need them all
    const page = this.planner.streams ? SHARED_PAGE : undefined;
    let count = 0;
    for (let after = ''; ; ) {
      const updates = await store.roundUpdates(r.id, page ? after : undefined, page);
      for (const u of updates) {
        r.reports.push(u.unclipped);
        r.bytes += u.bytesReceived;
        if (this.planner.streams) {
          r.acc ??= new FedAvgAccumulator(u.update.length);
          r.acc.add(u.update, u.weight);
        } else r.results.push({ deviceId: u.deviceId, update: u.update, numExamples: u.weight });
      }
      count += updates.length;
      if (!page || updates.length < page) break;
      after = updates[updates.length - 1].deviceId;
    }
    r.contributors = count;
    const selected = r.selected.size;
    return { eligible: spec.sampling.scheme === 'first-come' ? selected : statuses.size, selected };
  }

  /** Fail the open round with `message`, keep the current version, and retry after retryDelayMs (a step). */
  private fail(r: OpenRound, message: string): void {
    if (this.round === r) this.round = undefined; // no update joins it from here
    this.stepping('failing the round', () => this.failNow(r, message));
  }

  private async failNow(r: OpenRound, message: string): Promise<void> {
    const { spec } = this.d;
    if (this.round === r) this.round = undefined;
    const rec = this.record(r, 'failed', message);
    await this.d.store.failRound(rec);
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

/** Updates read per page when a shared round's streaming aggregate folds them. */
const SHARED_PAGE = 1000;

/** Stop a round's deadline and selection timers. */
function clearRoundTimers(r: OpenRound): void {
  if (r.timer) clearTimeout(r.timer);
  if (r.selectionTimer) clearTimeout(r.selectionTimer);
}
