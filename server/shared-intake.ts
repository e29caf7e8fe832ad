/**
 * Rounds every replica serves (PostgreSQL, issue 13 phase 2b): check-in and upload for a program's
 * open round on any replica, driver or not. The driver stores the round's plan when it opens it
 * (server/program-runner.ts); each replica reads it (cached for a second, dropped at once when a
 * NOTIFY says a round opened or closed) and claims, in the database:
 *
 *  - a device's admission with its coin (first-come: within the plan's cap), insert-if-absent —
 *    a second check-in anywhere gets the first outcome, never a new roll;
 *  - an accepted update, stored as a row with the device's status turned "done" in one
 *    transaction holding the plan row FOR SHARE, committed before the device hears "accepted";
 *  - a rejection (the device's status turned "failed").
 *
 * The driver hears every claim (LISTEN) and mirrors it into its runner (noteParticipant), which
 * decides when the round closes; the close takes the plan row FOR UPDATE and reads the updates.
 * Programs with secure aggregation or fixed-cohort sampling are not shared: their rounds stay on
 * the driver (a follower forwards their round requests to it through the database: server/forwarding.ts).
 */
import { refuse } from './errors.js';
import type { ProgramSpec } from './program-config.js';
import type { ComeBack, WorkOrder } from './round-events.js';
import type { Rng } from '../random/rng.js';
import type { RoundPlanRecord, StateStore, StorageEngine, StoredVersion } from './storage/index.js';
import type { ProgramRunner } from './program-runner.js';
import type { LogSink } from './log.js';

/** True if a program's rounds are served by every replica on this engine. */
export function sharesRounds(spec: ProgramSpec, engine: StorageEngine): boolean {
  return engine === 'postgres' && !spec.secagg && spec.sampling.scheme !== 'fixed-cohort';
}

/** How long a replica trusts the open round it read (NOTIFY drops it sooner), ms. */
const PLAN_TTL_MS = 1000;

/** What SharedIntake needs of the coordinator. */
export interface SharedIntakeDeps {
  readonly store: StateStore;
  readonly replicaId: string;
  /** Coins of Poisson sampling. */
  readonly rng: Rng;
  /** True while this replica drives the program. */
  readonly drives: (programId: string) => boolean;
  /** The program's runner here (the driver's mirrors the claims), if it is a program of this coordinator. */
  readonly runnerOf: (programId: string) => ProgramRunner | undefined;
  /** Every program of the coordinator. */
  readonly programIds?: () => string[];
  /** A program's completed rounds reached its total (a follower learns it from the database). */
  readonly onProgramOver?: (programId: string) => void;
  readonly log?: LogSink;
}

interface CachedPlan {
  readonly plan?: RoundPlanRecord;
  readonly atMs: number;
  /** Rounds completed when read (a follower's answer once the program is over). */
  readonly completed: number;
}

/** One replica's side of shared rounds. */
export class SharedIntake {
  private readonly plans = new Map<string, CachedPlan>();
  private readonly versions = new Map<string, StoredVersion>();
  private unlisten?: () => Promise<void>;
  private readonly over = new Set<string>();

  constructor(private readonly d: SharedIntakeDeps) {}

  /** Start hearing round changes (before serving). */
  async listen(): Promise<void> {
    if (this.unlisten) return;
    this.unlisten = await this.d.store.onRoundChange((c) => {
      if (c.what === 'round-completed' || c.what === 'round-failed') {
        this.plans.delete(c.programId);
        if (!this.d.drives(c.programId)) this.mirrorClosed(c.programId, c.roundId);
        return;
      }
      if (c.what === 'open' || c.what === 'closed' || c.what === 'selection-closed') this.plans.delete(c.programId);
      else if (c.deviceId && this.d.drives(c.programId)) this.d.runnerOf(c.programId)?.noteParticipant(c.roundId, c.deviceId, c.what);
    }, () => this.resync());
  }

  /**
   * Claims may have been missed (the listening connection was lost and made again): forget the
   * cached plans, and let each runner driving a shared round here read its participants again.
   */
  private resync(): void {
    this.plans.clear();
    this.d.log?.('round notifications resumed: re-reading the open rounds', { replica: this.d.replicaId });
    for (const id of this.d.programIds?.() ?? []) {
      const runner = this.d.runnerOf(id);
      const open = runner?.openRound;
      if (!runner || !open || !this.d.drives(id)) continue;
      this.d.store.participantStatuses(open.id).then(
        (statuses) => {
          for (const [device, status] of statuses) runner.noteParticipant(open.id, device, status);
        },
        (e: unknown) => this.d.log?.('re-reading a round\'s participants failed', { program: id, round: open.id, error: (e as Error).message }),
      );
    }
  }

  /** A round another replica closed: this replica's runner of the program tells its watchers (and counts it). */
  private mirrorClosed(programId: string, roundId: string): void {
    const runner = this.d.runnerOf(programId);
    if (!runner) return;
    this.d.store.rounds(programId).then(
      (rounds) => {
        const rec = rounds.find((r) => r.roundId === roundId);
        if (rec && !this.d.drives(programId)) runner.noteClosedElsewhere(rec);
      },
      (e: unknown) => this.d.log?.('reading a round another replica closed failed', { program: programId, round: roundId, error: (e as Error).message }),
    );
  }

  /** Stop hearing them. */
  async close(): Promise<void> {
    const u = this.unlisten;
    this.unlisten = undefined;
    await u?.();
  }

  /** True once this replica read that the program completed its rounds. */
  isOver(programId: string): boolean {
    return this.over.has(programId);
  }

  /** The program's open round as its driver planned it (cached; see PLAN_TTL_MS). */
  async plan(spec: ProgramSpec): Promise<CachedPlan> {
    const c = this.plans.get(spec.id);
    if (c && Date.now() - c.atMs < PLAN_TTL_MS) return c;
    const atMs = Date.now();
    const plan = await this.d.store.openRoundPlan(spec.id);
    const completed = plan ? 0 : await this.d.store.completedRounds(spec.id);
    const fresh = { plan, atMs, completed };
    this.plans.set(spec.id, fresh);
    if (completed >= spec.rounds && !this.over.has(spec.id)) {
      this.over.add(spec.id);
      this.d.onProgramOver?.(spec.id);
    }
    return fresh;
  }

  private async version(programId: string, v: number): Promise<StoredVersion> {
    const key = `${programId}\u0000${v}`;
    let rec = this.versions.get(key);
    if (!rec) {
      rec = await this.d.store.version(programId, v);
      if (!rec) throw new Error(`program ${programId} has no adapter version ${v}, which its open round names`);
      this.versions.set(key, rec);
    }
    return rec;
  }

  /** A device asks for work: its admission to the open round (claimed once, in the database). */
  async checkIn(spec: ProgramSpec, runner: ProgramRunner, deviceId: string): Promise<WorkOrder | ComeBack> {
    const driving = this.d.drives(spec.id);
    if (driving) {
      const idle = runner.idleAnswer();
      if (idle) return idle;
    }
    const { plan, completed } = await this.plan(spec);
    const soon = Math.max(200, spec.retryDelayMs);
    if (!plan) {
      if (completed >= spec.rounds) return { retryAfterMs: 3_600_000, reason: `program ${spec.id} has completed its ${spec.rounds} rounds`, programComplete: true };
      return { retryAfterMs: soon, reason: 'no round is open; the next one opens shortly', programComplete: false };
    }
    const now = Date.now();
    const untilNext = Math.max(200, Math.min(spec.retryDelayMs * 5, plan.deadlineMs - now));
    const poisson = spec.sampling.scheme === 'poisson';
    // the coin is rolled here, but only the first claim of the device in the round counts
    const coin = !poisson || this.d.rng.nextFloat() < spec.sampling.rate;
    const selecting = !poisson || now < plan.selectionEndsMs;
    const a = selecting ? await this.d.store.admitParticipant(plan.roundId, deviceId, this.d.replicaId, coin, now) : await this.known(plan.roundId, deviceId);
    if (!('status' in a) && a.outcome === 'full') return { retryAfterMs: untilNext, reason: `round ${plan.roundNumber}'s cohort is full`, programComplete: false };
    if (!('status' in a)) {
      this.plans.delete(spec.id);
      return selecting && a.outcome === 'closed' ? { retryAfterMs: soon, reason: 'no round is open; the next one opens shortly', programComplete: false } : { retryAfterMs: untilNext, reason: `round ${plan.roundNumber}'s selection has closed; check in for the next round`, programComplete: false };
    }
    if (a.status === 'not-sampled') return { retryAfterMs: untilNext, reason: `not sampled for round ${plan.roundNumber} (${spec.sampling.scheme} sampling); check in for the next round`, programComplete: false };
    if (a.status !== 'working') return { retryAfterMs: Math.max(200, plan.deadlineMs - now), reason: `this device already took part in round ${plan.roundNumber}`, programComplete: false };
    if (driving) runner.noteParticipant(plan.roundId, deviceId, 'working');
    const v = await this.version(spec.id, plan.adapterVersion);
    return { roundId: plan.roundId, adapterVersion: v.version, adapterSha256: v.sha256, adapterBytes: v.sizeBytes, clipNorm: plan.clipNorm, deviceNoiseStd: plan.deviceNoiseStd, deadlineUnixMs: plan.deadlineMs };
  }

  /** A device's admission made before (after the selection closed, no new one is made). */
  private async known(roundId: string, deviceId: string): Promise<{ outcome: 'known'; status: 'working' | 'done' | 'failed' | 'not-sampled' } | { outcome: 'selection-closed' }> {
    const s = (await this.d.store.participantStatuses(roundId)).get(deviceId);
    return s ? { outcome: 'known', status: s } : { outcome: 'selection-closed' };
  }

  /**
   * May this device upload to this round now? (asked on the header, before the bytes are read;
   * the acceptance asks the database again). Returns the round's plan; refuses a round that is
   * not the open one (FAILED_PRECONDITION, or DEADLINE_EXCEEDED once it closed) or past its deadline.
   */
  async expectUpload(spec: ProgramSpec, roundId: string): Promise<RoundPlanRecord> {
    let { plan } = await this.plan(spec);
    if (plan?.roundId !== roundId) {
      this.plans.delete(spec.id); // perhaps a round that opened a moment ago
      plan = (await this.plan(spec)).plan;
    }
    if (plan?.roundId !== roundId) {
      const past = await this.d.store.roundPlan(roundId);
      if (past && past.programId === spec.id) refuse('deadline-exceeded', `round ${roundId} has closed; the update came too late`);
      refuse('failed-precondition', `round ${roundId} is not this program's open round${plan ? ` (${plan.roundId} is)` : ''}`);
    }
    if (Date.now() > plan.deadlineMs) refuse('deadline-exceeded', `round ${roundId}'s deadline has passed`);
    return plan;
  }

  /**
   * Store a validated update (durable before this resolves), or refuse it: the round's intake
   * closed (FAILED_PRECONDITION — it was not counted), the device already sent one
   * (ALREADY_EXISTS), was rejected, not sampled or not admitted (FAILED_PRECONDITION).
   */
  async accept(spec: ProgramSpec, deviceId: string, roundId: string, update: Float32Array, weight: number, unclipped: boolean, bytes: number): Promise<void> {
    const outcome = await this.d.store.acceptRoundUpdate({ roundId, deviceId, replicaId: this.d.replicaId, update, weight, unclipped, bytesReceived: bytes });
    switch (outcome) {
      case 'accepted':
        if (this.d.drives(spec.id)) this.d.runnerOf(spec.id)?.noteParticipant(roundId, deviceId, 'done');
        return;
      case 'closed':
        this.plans.delete(spec.id);
        return refuse('failed-precondition', `round ${roundId} closed before this update was stored; it was not counted`);
      case 'done':
        return refuse('already-exists', `device ${deviceId} already sent its update for round ${roundId}`);
      case 'failed':
        return refuse('failed-precondition', `device ${deviceId}'s earlier update for round ${roundId} was rejected`);
      case 'not-sampled':
        return refuse('failed-precondition', `device ${deviceId} was not sampled for round ${roundId}`);
      default:
        return refuse('failed-precondition', `device ${deviceId} was not selected for round ${roundId}; check in first`);
    }
  }

  /** A working participant's update was rejected: it counts as a failure of the round (on every replica). */
  async reject(spec: ProgramSpec, deviceId: string, roundId: string): Promise<void> {
    if ((await this.d.store.failParticipant(roundId, deviceId, this.d.replicaId)) && this.d.drives(spec.id)) this.d.runnerOf(spec.id)?.noteParticipant(roundId, deviceId, 'failed');
  }
}
