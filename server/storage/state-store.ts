/**
 * The coordinator's durable state behind one asynchronous interface, whatever the engine: the
 * embedded SQLite file (the default, one process) or PostgreSQL (shared by coordinator replicas).
 * Every method of the former synchronous Store (test/support/legacy-store.ts) is here, Promise-returning, plus
 * transactions and what replicas need to agree through the database: nonces, round
 * participation, per-replica partial sums and a lease per program — each atomic in the database.
 */
import type {
  LedgerEntry,
  ListedDevice,
  StoredDevice,
  StoredProgram,
  StoredProgramAdmin,
  StoredRelease,
  StoredReleaseKey,
  StoredRound,
  StoredVersion,
} from './records.js';

export type { LedgerEntry, ListedDevice, StoredDevice, StoredProgram, StoredProgramAdmin, StoredRelease, StoredReleaseKey, StoredRound, StoredVersion };

/** One replica's running sum of the updates it accepted in a round. */
export interface PartialSum {
  readonly roundId: string;
  readonly replicaId: string;
  /** The encoded sum (its format is the strategy's). */
  readonly bytes: Uint8Array;
  /** How many updates the sum contains. */
  readonly count: number;
  readonly updatedMs: number;
}

/** Who holds a program's lease, until when, and its epoch (incremented whenever the holder changes: a fencing token). */
export interface Lease {
  readonly programId: string;
  readonly holder: string;
  readonly expiresMs: number;
  readonly epoch: number;
}

/** A round's plan as its driver recorded it when it opened the round: what every replica serves it by. */
export interface RoundPlanRecord {
  readonly roundId: string;
  readonly programId: string;
  readonly roundNumber: number;
  /** The adapter version devices train from. */
  readonly adapterVersion: number;
  /** The clip bound C devices are told (0 = none). */
  readonly clipNorm: number;
  /** The std of the noise devices add themselves (local / distributed DP; 0 otherwise). */
  readonly deviceNoiseStd: number;
  readonly deadlineMs: number;
  /** When the selection closes (poisson coins are rolled until then), ms since the epoch. */
  readonly selectionEndsMs: number;
  /** At most this many devices are admitted (first-come's cohortSize × overSelect); 0 = no cap (poisson). */
  readonly cap: number;
  /** The replica that drives the round. */
  readonly driver: string;
  /** When the driver closed the round's intake (0 while updates are taken). */
  readonly intakeClosedMs: number;
}

/** A device's place in a round: working on its update, answered (done / failed), or its coin said no. */
export type ParticipantStatus = 'working' | 'done' | 'failed' | 'not-sampled';

/** What a check-in's claim found: a new admission (with its coin), one made before (anywhere), or none (full, round closed, selection ended). */
export type Admission = { readonly outcome: 'admitted' | 'known'; readonly status: ParticipantStatus } | { readonly outcome: 'full' | 'closed' | 'selection-closed' };

/** What became of an update offered to a round: stored, or why not (the round's intake closed, or the device's status). */
export type Acceptance = 'accepted' | 'closed' | 'not-selected' | Exclude<ParticipantStatus, 'working'>;

/** An acknowledged update as stored: the flat adapter delta (after intake), its weight in the round's mean. */
export interface StoredUpdate {
  readonly roundId: string;
  readonly deviceId: string;
  /** The replica that accepted it. */
  readonly replicaId: string;
  readonly update: Float32Array;
  readonly weight: number;
  /** The device's report: was its update within C before clipping? */
  readonly unclipped: boolean;
  readonly bytesReceived: number;
}

/**
 * A change of a round, as replicas hear of it (PostgreSQL NOTIFY): a shared round opened or its
 * intake closed, a device's new status in it, or any round completed or failed.
 */
export interface RoundChange {
  readonly programId: string;
  readonly roundId: string;
  readonly deviceId?: string;
  readonly what: 'open' | 'selection-closed' | 'closed' | 'round-completed' | 'round-failed' | ParticipantStatus;
}

/** A request a follower forwards to its program's driver (authenticated by the follower). */
export interface ForwardedRequest {
  readonly id: string;
  readonly programId: string;
  /** The Coordinator method (CheckIn, UploadUpdate, SecAgg). */
  readonly method: string;
  /** The device the follower authenticated. */
  readonly deviceId: string;
  /** The request message as it arrived (for UploadUpdate: its header chunk). */
  readonly request: Uint8Array;
  /** UploadUpdate: the sealed update the stream carried; empty otherwise. */
  readonly payload: Uint8Array;
  readonly fromReplica: string;
  /** After this the request is nobody's (ms since the epoch). */
  readonly deadlineMs: number;
}

/** A driver's answer to a forwarded request: a gRPC status (code 0 with the response's bytes, or an error and its sentence). */
export interface ForwardAnswer {
  readonly code: number;
  readonly details: string;
  readonly response?: Uint8Array;
}

/** A forwarded request was made, or answered (NOTIFY). */
export interface ForwardNotice {
  readonly kind: 'request' | 'answer';
  readonly id: string;
  readonly programId?: string;
}

/** The engines a StateStore runs on. */
export type StorageEngine = 'sqlite' | 'postgres';

/** The coordinator's state, asynchronous. */
export interface StateStore {
  /** Which engine holds the state. */
  readonly engine: StorageEngine;

  /**
   * Run `fn` in one database transaction: it commits if `fn` resolves and rolls back if it
   * throws. Use only the `tx` store inside `fn` (calls on the outer store wait for the
   * transaction on SQLite). Nested calls on `tx` join the outer transaction.
   */
  withTransaction<T>(fn: (tx: StateStore) => Promise<T>): Promise<T>;

  /** The stored program, if any. */
  program(id: string): Promise<StoredProgram | undefined>;
  /** Register a program with its initial adapter version 0 (one transaction). */
  createProgram(p: StoredProgram, initial: Omit<StoredVersion, 'version' | 'roundNumber'>, now?: number): Promise<void>;
  /** Record a program's current settings. */
  updateProgramConfig(id: string, configJson: string): Promise<void>;
  /** Enrol a device; returns the existing record if this key already enrolled in the program. */
  enrollDevice(d: StoredDevice, now?: number): Promise<StoredDevice>;
  /** A device by id. */
  device(id: string): Promise<StoredDevice | undefined>;
  /** A device by id, synchronously, where the engine allows it (SQLite); undefined if it does not or there is none. */
  deviceNow?(id: string): StoredDevice | undefined;
  /** Devices enrolled in a program, synchronously, where the engine allows it (SQLite); undefined if it does not. */
  deviceCountNow?(programId: string): number | undefined;
  /** Devices enrolled in a program. */
  deviceCount(programId: string): Promise<number>;
  /** The newest adapter version of a program; RangeError if it has none. */
  latestVersion(programId: string): Promise<StoredVersion>;
  /** True if `sha256` is an adapter version of the program. */
  programHasBlob(programId: string, sha256: string): Promise<boolean>;
  /** Record a round as opened; with `plan`, in the same transaction, the plan every replica serves it by. */
  openRound(r: StoredRound, plan?: RoundPlanRecord): Promise<void>;
  /** Merge a completed round's server-side evaluation into its metrics; RangeError if no such round. */
  recordRoundEval(roundId: string, values: Readonly<Record<string, number>>): Promise<void>;
  /** Mark an open round failed; throws if it is not open. */
  failRound(r: StoredRound): Promise<void>;
  /** Atomically: add the round's adapter version (and release) and mark the round completed. */
  completeRound(r: StoredRound, version: Omit<StoredVersion, 'roundNumber'>, release?: StoredRelease): Promise<void>;
  /** One adapter version of a program, if it exists. */
  version(programId: string, version: number): Promise<StoredVersion | undefined>;
  /** A program's release key, if one was recorded. */
  releaseKey(programId: string): Promise<StoredReleaseKey | undefined>;
  /** Record a program's release key. */
  setReleaseKey(programId: string, k: StoredReleaseKey): Promise<void>;
  /** Append a release (signed, or awaiting its signature). */
  addRelease(rel: StoredRelease, now?: number): Promise<void>;
  /** Attach the offline signature to an unsigned release; throws if none awaits it. */
  signRelease(programId: string, sequence: number, signature: Uint8Array): Promise<void>;
  /** A program's releases in sequence order. */
  releases(programId: string): Promise<StoredRelease[]>;
  /** Rounds left open by a crash become failed; returns how many. */
  failOpenRounds(programId: string, now?: number): Promise<number>;
  /** A program's rounds in order. */
  rounds(programId: string): Promise<StoredRound[]>;
  /** Rounds completed so far. */
  completedRounds(programId: string): Promise<number>;
  /** Append a round's privacy spend, durably, before its aggregate is released. */
  appendLedger(e: LedgerEntry, now?: number): Promise<void>;
  /** A program's ledger in order. */
  ledger(programId: string): Promise<LedgerEntry[]>;
  /** A program's administrative state, if one was set. */
  programAdmin(programId: string): Promise<StoredProgramAdmin | undefined>;
  /** Record a program paused or stopped; undefined clears it. */
  setProgramAdmin(programId: string, a: StoredProgramAdmin | undefined): Promise<void>;
  /** Record a device's revocation (the first record stays). */
  revokeDevice(deviceId: string, programId: string, reason: string, actor: string, now?: number): Promise<void>;
  /** Every revoked device id. */
  revokedDeviceIds(): Promise<string[]>;
  /** A program's devices, newest enrolment first, with revocations (at most `limit`). */
  listDevices(programId: string, limit?: number): Promise<ListedDevice[]>;
  /** Devices of a program an administrator revoked. */
  revokedCount(programId: string): Promise<number>;

  /** Claim a request nonce of a device: true the first time, false for a replay (on any replica). */
  claimNonce(deviceId: string, nonce: string, expiresMs: number): Promise<boolean>;
  /** Forget nonces that expired before `now` (their requests are refused as stale anyway); returns how many. */
  purgeExpiredNonces(now: number): Promise<number>;
  /** Admit a device to a round: true the first time, false if it already takes part. */
  claimParticipation(roundId: string, deviceId: string, now?: number): Promise<boolean>;
  /** The devices admitted to a round, sorted. */
  participants(roundId: string): Promise<string[]>;
  /**
   * Store a replica's partial sum of a round, replacing its previous one. A sum of fewer updates
   * than the stored one is stale and refused (false): a replica's sum only grows.
   */
  savePartialSum(roundId: string, replicaId: string, bytes: Uint8Array, count: number, now?: number): Promise<boolean>;
  /** Every replica's partial sum of a round, by replica id. */
  partialSums(roundId: string): Promise<PartialSum[]>;
  /** Drop a round's partial sums (after its aggregate is stored); returns how many. */
  deletePartialSums(roundId: string): Promise<number>;
  /** Take (or extend, if `holder` has it) a program's lease for `ttlMs`: true if `holder` now holds it. */
  acquireLease(programId: string, holder: string, ttlMs: number, now?: number): Promise<boolean>;
  /** Extend a lease `holder` still holds: false if it expired or another replica took it. */
  renewLease(programId: string, holder: string, ttlMs: number, now?: number): Promise<boolean>;
  /** Give a lease up (no effect unless `holder` has it); returns whether it did. */
  releaseLease(programId: string, holder: string): Promise<boolean>;
  /** The program's lease record, if any (possibly expired). */
  lease(programId: string): Promise<Lease | undefined>;

  /** The program's open round whose intake is open, as planned (undefined if none). */
  openRoundPlan(programId: string): Promise<RoundPlanRecord | undefined>;
  /** A round's plan, if it has one. */
  roundPlan(roundId: string): Promise<RoundPlanRecord | undefined>;
  /**
   * Claim a device's place in an open round with its coin (`sampled`; first-come: true, within
   * the plan's cap): insert-if-absent, so a second check-in anywhere gets the first outcome.
   */
  admitParticipant(roundId: string, deviceId: string, replicaId: string, sampled: boolean, now?: number): Promise<Admission>;
  /**
   * Store an update of a working participant and mark it done, in one transaction that holds the
   * round's plan row FOR SHARE: 'accepted' once committed, else why not (nothing is stored).
   */
  acceptRoundUpdate(u: StoredUpdate, now?: number): Promise<Acceptance>;
  /** Mark a working participant failed (its update was rejected); true if it was working. */
  failParticipant(roundId: string, deviceId: string, replicaId: string): Promise<boolean>;
  /** End a round's selection now (its driver decided it; a coin claimed after this commits is refused); true if it was still running. */
  endSelection(roundId: string, now?: number): Promise<boolean>;
  /** Close a round's intake (waits for acceptances in flight; refuses every later one); true if this call closed it. */
  closeIntake(roundId: string, now?: number): Promise<boolean>;
  /** A round's stored updates, by device id: all, or (a page) at most `limit` of those after device id `after`. */
  roundUpdates(roundId: string, after?: string, limit?: number): Promise<StoredUpdate[]>;
  /** Every participant of a round and its status. */
  participantStatuses(roundId: string): Promise<Map<string, ParticipantStatus>>;
  /**
   * Hear of changes of rounds made by any replica (PostgreSQL); returns the unsubscribe. `onGap`:
   * called when changes may have been missed (the listening connection was made again). A no-op on SQLite.
   */
  onRoundChange(listener: (c: RoundChange) => void, onGap?: () => void): Promise<() => Promise<void>>;

  /** Insert a forwarded request (and tell the drivers). */
  forwardRequest(r: ForwardedRequest, now?: number): Promise<void>;
  /** Take a forwarded request to run it (once: undefined if taken already, gone or past its deadline). */
  takeForwarded(id: string, replicaId: string, now?: number): Promise<ForwardedRequest | undefined>;
  /** Forwarded requests of these programs nobody took yet (within their deadline). */
  untakenForwarded(programIds: readonly string[], now?: number): Promise<{ id: string; programId: string }[]>;
  /** Write the answer of a request `replicaId` took (and tell its follower); false if it was not its, or answered. */
  answerForwarded(id: string, replicaId: string, a: ForwardAnswer, now?: number): Promise<boolean>;
  /** A forwarded request's answer, once written. */
  forwardedAnswer(id: string): Promise<ForwardAnswer | undefined>;
  /** Delete a forwarded request (answered, or given up). */
  deleteForwarded(id: string): Promise<boolean>;
  /** Delete forwarded requests whose deadline is before `before`; returns how many. */
  purgeForwarded(before: number): Promise<number>;
  /** Hear of forwarded requests and answers (PostgreSQL); a no-op on SQLite. */
  onForward(listener: (n: ForwardNotice) => void, onGap?: () => void): Promise<() => Promise<void>>;

  /** Close the connection (pool). */
  close(): Promise<void>;
}
