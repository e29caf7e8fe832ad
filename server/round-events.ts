/**
 * What a program's rounds say to the outside: round events (as WatchRounds streams them), the
 * work order a selected device gets, and the come-back answer to a device with no work.
 */
import type { StoredRound } from './storage/index.js';

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
  /** COMPLETED rounds of a program with server-side evaluation: the new adapter's mean loss (nats/token) on the held-out text. */
  readonly heldoutLoss?: number;
  /** …and on the program's base-domain text (forgetting), when it names one. */
  readonly baseTextLoss?: number;
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

/** A stored round as the event WatchRounds sends, in `state`. */
export function eventOf(r: StoredRound, state: RoundStateName): RoundEventRecord {
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
    ...(state === 'COMPLETED' && typeof r.metrics?.heldoutLoss === 'number' ? { heldoutLoss: r.metrics.heldoutLoss } : {}),
    ...(state === 'COMPLETED' && typeof r.metrics?.baseTextLoss === 'number' ? { baseTextLoss: r.metrics.baseTextLoss } : {}),
  };
}

/**
 * One update a round did not take: refused at upload (`kind` is the refusal's kind, e.g.
 * "invalid-argument", "deadline-exceeded"), dropped because its device was revoked ("revoked"),
 * or never sent by a selected device before the round closed ("no-update").
 */
export interface RejectionRecord {
  readonly programId: string;
  readonly roundId: string;
  readonly roundNumber: number;
  readonly deviceId: string;
  readonly kind: string;
  readonly reason: string;
  readonly timeUnixMs: number;
}

/** What a program's runner is doing, for operators: its state and why. */
export interface RunnerStatus {
  /** running: rounds open as usual; waiting: for enrolments or a release signature; paused/stopped: by an administrator; completed: every round done or the budget spent. */
  readonly state: 'running' | 'waiting' | 'paused' | 'stopped' | 'completed';
  readonly reason: string;
}
