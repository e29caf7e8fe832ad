/**
 * What the dashboard shows, and its live updates: a snapshot of every program (state, ε, devices,
 * adapter versions with their release manifests, rounds), then one update per change, driven by
 * the programs' rxjs streams (runner.events$ and runner.rejections$) and, for enrolments and
 * device activity, a slow refresh. The HTTP server (http.ts) sends them as Server-Sent Events.
 */
import { interval, Subject, type Observable, type Subscription } from 'rxjs';
import { parseManifest, type ReleaseManifest } from '../../proto/release.js';
import type { Admin, AdminDevice, AdminProgram } from '../admin.js';
import type { Coordinator } from '../coordinator.js';
import type { RejectionRecord, RoundEventRecord, RoundStateName } from '../round-events.js';
import type { StoredRound } from '../storage/index.js';

/** Round attempts a snapshot carries per program (the newest). */
export const SNAPSHOT_ROUNDS = 500;
/** Devices a program view lists (the newest enrolments; the counts cover all). */
export const VIEW_DEVICES = 200;
/** Releases a program view lists (the newest). */
export const VIEW_RELEASES = 50;

/** One round attempt on the dashboard. */
export interface RoundView {
  readonly roundId: string;
  readonly roundNumber: number;
  readonly state: RoundStateName;
  /** Devices selected (participants) and updates taken. */
  readonly selected: number;
  readonly updates: number;
  /** Updates not taken, by kind (see RejectionRecord; counted since the coordinator started). */
  readonly rejected: Readonly<Record<string, number>>;
  /** Selected devices whose update failed (stored; survives restarts). */
  readonly failed: number;
  readonly openedMs: number;
  readonly closedMs: number;
  readonly epsilonSpent: number;
  /** Held-out loss of the round's adapter, when the program evaluates one; null otherwise. */
  readonly heldOutLoss: number | null;
  readonly adapterVersion: number;
  readonly message: string;
}

/** One release of a program on the dashboard. */
export interface ReleaseView {
  readonly sequence: number;
  readonly signed: boolean;
  readonly manifest: ReleaseManifest;
}

/** One program on the dashboard. */
export interface ProgramView extends AdminProgram {
  readonly devices: readonly AdminDevice[];
  readonly releases: readonly ReleaseView[];
}

/** The whole dashboard at one moment. */
export interface DashboardSnapshot {
  readonly timeMs: number;
  readonly programs: readonly (ProgramView & { readonly rounds: readonly RoundView[] })[];
}

/** One live change. */
export type DashboardUpdate = { readonly type: 'round'; readonly programId: string; readonly round: RoundView } | { readonly type: 'program'; readonly program: ProgramView };

/** A held-out loss where a round record or event carries one (the evaluation adds it), else null. */
function lossOf(x: object): number | null {
  // round events and stored round metrics name it heldoutLoss (server/eval/)
  const direct = (x as { heldoutLoss?: unknown }).heldoutLoss;
  const fromMetrics = (x as { metrics?: Record<string, unknown> }).metrics?.heldoutLoss;
  const v = typeof direct === 'number' ? direct : fromMetrics;
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const STATE_OF: Readonly<Record<StoredRound['state'], RoundStateName>> = { open: 'OPEN', completed: 'COMPLETED', failed: 'FAILED' };

/** The dashboard's model of a coordinator. Call close() to stop following it. */
export class DashboardFeed {
  private readonly rounds = new Map<string, Map<string, RoundView>>();
  private readonly out = new Subject<DashboardUpdate>();
  private readonly subs: Subscription[] = [];
  private lastProgramJson = new Map<string, string>();

  /** Each program's view as last read (snapshot() answers from it; refreshPrograms() reads it again). */
  private readonly views = new Map<string, ProgramView>();

  private constructor(
    private readonly c: Coordinator,
    private readonly admin: Admin,
  ) {}

  /** Follow `c`; `refreshMs` is how often enrolments and device activity are looked at (default 2000). */
  static async open(c: Coordinator, admin: Admin, refreshMs = 2000): Promise<DashboardFeed> {
    if (!Number.isFinite(refreshMs) || refreshMs < 100) throw new RangeError(`DashboardFeed: refreshMs must be at least 100, got ${refreshMs}`);
    const f = new DashboardFeed(c, admin);
    for (const id of c.programIds()) {
      const m = new Map<string, RoundView>();
      f.rounds.set(id, m);
      const runner = c.program(id).runner;
      f.subs.push(runner.events$.subscribe((e) => f.onEvent(e)));
      f.subs.push(runner.rejections$.subscribe((e) => f.onRejection(e)));
      // stored rounds first; what events brought while they were read is newer and stays
      const stored = (await c.store.rounds(id)).slice(-SNAPSHOT_ROUNDS);
      const live = new Map(m);
      m.clear();
      for (const r of stored) m.set(r.roundId, f.fromStored(r));
      for (const [k, v] of live) m.set(k, v);
      const view = await f.programView(id);
      f.views.set(id, view);
      f.lastProgramJson.set(id, JSON.stringify(view));
    }
    f.subs.push(interval(refreshMs).subscribe(() => void f.refreshPrograms().catch(() => undefined)));
    return f;
  }

  /** Every update from now on. */
  get updates$(): Observable<DashboardUpdate> {
    return this.out.asObservable();
  }

  /** The whole dashboard now. */
  snapshot(): DashboardSnapshot {
    return {
      timeMs: Date.now(),
      programs: this.c.programIds().map((id) => ({ ...(this.views.get(id) as ProgramView), rounds: [...(this.rounds.get(id)?.values() ?? [])] })),
    };
  }

  /** Send every program whose view changed (admin actions call this at once; the timer every refreshMs). */
  async refreshPrograms(): Promise<void> {
    for (const id of this.c.programIds()) await this.emitProgram(id);
  }

  /** Stop following the coordinator; updates$ completes. */
  close(): void {
    for (const s of this.subs) s.unsubscribe();
    this.out.complete();
  }

  private async programView(id: string): Promise<ProgramView> {
    const p = this.c.program(id);
    const releases = p.releases
      .all()
      .slice(-VIEW_RELEASES)
      .reverse()
      .map((r) => ({ sequence: r.sequence, signed: r.signature.length > 0, manifest: parseManifest(r.manifest) }));
    return { ...(await this.admin.program(id)), devices: (await this.admin.devices(id)).slice(0, VIEW_DEVICES), releases };
  }

  /** A view's identity for change detection: lastSeen moves on every request, so it is left out. */
  private viewKey(view: ProgramView): string {
    return JSON.stringify({ ...view, devices: view.devices.map((d) => ({ ...d, lastSeenMs: 0 })) });
  }

  private async emitProgram(id: string): Promise<void> {
    const view = await this.programView(id);
    this.views.set(id, view);
    const key = this.viewKey(view);
    if (this.lastProgramJson.get(id) === key) return;
    this.lastProgramJson.set(id, key);
    this.out.next({ type: 'program', program: view });
  }

  private fromStored(r: StoredRound): RoundView {
    return {
      roundId: r.roundId,
      roundNumber: r.roundNumber,
      state: STATE_OF[r.state],
      selected: r.selected,
      updates: r.updates,
      rejected: {},
      failed: r.failed,
      openedMs: r.openedMs,
      closedMs: r.closedMs,
      epsilonSpent: r.epsilonSpent,
      heldOutLoss: lossOf(r),
      adapterVersion: r.adapterVersion,
      message: r.message,
    };
  }

  private put(programId: string, v: RoundView): void {
    let m = this.rounds.get(programId);
    if (!m) this.rounds.set(programId, (m = new Map()));
    m.set(v.roundId, v);
    // keep the newest SNAPSHOT_ROUNDS (a Map iterates in insertion order)
    while (m.size > SNAPSHOT_ROUNDS) m.delete(m.keys().next().value as string);
    this.out.next({ type: 'round', programId, round: v });
  }

  private onEvent(e: RoundEventRecord): void {
    const before = this.rounds.get(e.programId)?.get(e.roundId);
    const closed = e.state === 'COMPLETED' || e.state === 'FAILED';
    this.put(e.programId, {
      roundId: e.roundId,
      roundNumber: e.roundNumber,
      state: e.state,
      selected: e.devicesSelected,
      updates: e.updatesReceived,
      rejected: before?.rejected ?? {},
      failed: e.devicesFailed,
      openedMs: before?.openedMs ?? e.timeUnixMs,
      closedMs: closed ? e.timeUnixMs : 0,
      epsilonSpent: e.epsilonSpent,
      heldOutLoss: lossOf(e) ?? before?.heldOutLoss ?? null,
      adapterVersion: e.adapterVersion,
      message: e.message,
    });
    if (closed) this.emitProgram(e.programId);
  }

  private onRejection(e: RejectionRecord): void {
    const before = this.rounds.get(e.programId)?.get(e.roundId);
    if (!before) return;
    this.put(e.programId, { ...before, rejected: { ...before.rejected, [e.kind]: (before.rejected[e.kind] ?? 0) + 1 }, failed: Math.max(before.failed, Object.values(before.rejected).reduce((a, b) => a + b, 0) + 1) });
  }
}
