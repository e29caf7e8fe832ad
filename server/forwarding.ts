/**
 * Requests a follower forwards to a program's driver through PostgreSQL (issue 13): the round
 * requests of programs whose rounds stay on their driver (secure aggregation, fixed-cohort
 * sampling), so any replica serves any device request.
 *
 *  follower: authenticates the request (signature, nonce claimed in the database), inserts it as
 *    a row and NOTIFYs; waits (an event, or a poll every second) for the answer until the call's
 *    deadline (at most FORWARD_WAIT_MS); relays it — the response, or the same gRPC status and
 *    sentence — and deletes the row. No answer in time: UNAVAILABLE (the device retries; if the
 *    driver died, its lease moves and the next driver answers).
 *  driver: hears the NOTIFY (and sweeps every second for rows a missed NOTIFY left), takes each row
 *    of a program it drives once, runs it through the same bodies as its own requests
 *    (server/round-requests.ts) and writes the answer. A malformed row is answered with a refusal.
 *
 * The database sees what the coordinator sees: SecAgg adverts, shares and unmask responses are
 * signed or encrypted end to end between devices where the protocol says so; masked updates are
 * sealed to the program's key.
 */
import { randomUUID } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { CoordinatorError, refuse, statusError, toStatus } from './errors.js';
import type { LogSink } from './log.js';
import type { ForwardAnswer, ForwardedRequest, ForwardNotice, StateStore } from './storage/index.js';

/** The longest a follower waits for its driver's answer, ms. */
export const FORWARD_WAIT_MS = 10_000;
/** How often a waiting follower reads its answer, and a driver looks for rows it was not told of, ms. */
const POLL_MS = 1000;
/** How long before the call's deadline a follower gives up waiting, ms. */
const DEADLINE_MARGIN_MS = 250;
/** Rows this long past their deadline are deleted by any replica (their follower died), ms. */
const PURGE_AFTER_MS = 60_000;

/** What a Forwarder needs of its coordinator. */
export interface ForwarderDeps {
  readonly store: StateStore;
  readonly replicaId: string;
  /** True while this replica drives the program and its rounds are forwarded to it. */
  readonly drivesForwarded: (programId: string) => boolean;
  /** The programs this replica drives whose rounds are forwarded to it. */
  readonly drivenForwarded: () => string[];
  /** Run a forwarded request (never rejects: a refusal is an answer). */
  readonly execute: (r: ForwardedRequest) => Promise<ForwardAnswer>;
  readonly log?: LogSink;
}

/** One replica's side of forwarding: sending requests to drivers, and answering those sent to it. */
export class Forwarder {
  private readonly waiting = new Map<string, () => void>();
  private readonly running = new Set<string>();
  private unlisten?: () => Promise<void>;
  private timer?: NodeJS.Timeout;
  private sweeping = false;
  private lastPurgeMs = 0;

  constructor(private readonly d: ForwarderDeps) {}

  /** Start hearing forwarded requests and answers (before serving). */
  async listen(): Promise<void> {
    if (this.unlisten) return;
    this.unlisten = await this.d.store.onForward(
      (n) => this.onNotice(n),
      () => this.sweep(),
    );
    this.timer = setInterval(() => this.sweep(), POLL_MS);
    this.timer.unref();
  }

  /** Stop hearing them (waiting followers time out). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const u = this.unlisten;
    this.unlisten = undefined;
    await u?.();
  }

  private onNotice(n: ForwardNotice): void {
    if (n.kind === 'answer') this.waiting.get(n.id)?.();
    else if (n.kind === 'request' && typeof n.programId === 'string' && this.d.drivesForwarded(n.programId)) this.run(n.id);
  }

  /** Rows of the programs this replica drives that no NOTIFY brought; now and then, rows long past their deadline. */
  private sweep(): void {
    if (this.sweeping) return;
    const ids = this.d.drivenForwarded();
    const now = Date.now();
    const purge = now - this.lastPurgeMs > 30_000;
    if (ids.length === 0 && !purge) return;
    this.sweeping = true;
    (async () => {
      for (const r of await this.d.store.untakenForwarded(ids, now)) if (this.d.drivesForwarded(r.programId)) this.run(r.id);
      if (purge) {
        this.lastPurgeMs = now;
        await this.d.store.purgeForwarded(now - PURGE_AFTER_MS);
      }
    })()
      .catch((e: unknown) => this.d.log?.('reading forwarded requests failed', { replica: this.d.replicaId, error: (e as Error).message }))
      .finally(() => (this.sweeping = false));
  }

  /** Take a forwarded request (if nobody did), run it, write its answer. */
  private run(id: string): void {
    if (this.running.has(id)) return;
    this.running.add(id);
    (async () => {
      const r = await this.d.store.takeForwarded(id, this.d.replicaId);
      if (!r) return;
      const answer = await this.d.execute(r);
      await this.d.store.answerForwarded(id, this.d.replicaId, answer);
    })()
      .catch((e: unknown) => this.d.log?.('answering a forwarded request failed', { replica: this.d.replicaId, request: id, error: (e as Error).message }))
      .finally(() => this.running.delete(id));
  }

  /**
   * Forward an authenticated request to the program's driver and wait for its answer until
   * `deadlineMs` (at most FORWARD_WAIT_MS from now). Resolves with the response's bytes; rejects
   * with the driver's status (same code and sentence), or UNAVAILABLE if no answer came in time.
   */
  async forward(r: { programId: string; method: string; deviceId: string; request: Uint8Array; payload?: Uint8Array }, deadlineMs = Infinity): Promise<Uint8Array> {
    // (a little before the call's own deadline, so the device hears why)
    const until = Math.min(deadlineMs - DEADLINE_MARGIN_MS, Date.now() + FORWARD_WAIT_MS);
    const id = randomUUID();
    let wake = (): void => {};
    let woken = false;
    this.waiting.set(id, () => {
      woken = true;
      wake();
    });
    try {
      await this.d.store.forwardRequest({ id, programId: r.programId, method: r.method, deviceId: r.deviceId, request: r.request, payload: r.payload ?? new Uint8Array(0), fromReplica: this.d.replicaId, deadlineMs: until });
      for (;;) {
        const a = await this.d.store.forwardedAnswer(id);
        if (a) {
          if (a.code !== 0) throw statusError(a.code as grpc.status, a.details);
          if (!a.response) refuse('internal', `the driver of program "${r.programId}" answered the forwarded ${r.method} without a response`);
          return a.response;
        }
        const left = until - Date.now();
        if (left <= 0) refuse('unavailable', `program "${r.programId}"'s driver did not answer this ${r.method} (forwarded by replica ${this.d.replicaId}) in time; try again`);
        if (!woken)
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, Math.min(POLL_MS, left));
            wake = () => {
              clearTimeout(t);
              resolve();
            };
          });
        woken = false;
      }
    } catch (e) {
      if (e instanceof CoordinatorError) throw e;
      const s = toStatus(e); // the database: UNAVAILABLE
      throw statusError(s.code, s.details);
    } finally {
      this.waiting.delete(id);
      // (a row left by a failed delete is purged a minute past its deadline)
      await this.d.store.deleteForwarded(id).catch((e: unknown) => this.d.log?.('deleting a forwarded request failed', { replica: this.d.replicaId, request: id, error: (e as Error).message }));
    }
  }
}
