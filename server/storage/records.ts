/**
 * The records the coordinator keeps (server/storage/): programs and their keys, enrolled devices,
 * rounds, adapter versions, the privacy ledger, releases and administrative state — what every
 * StateStore engine reads and writes.
 */
/** A program's stored identity and keys. */
export interface StoredProgram {
  readonly id: string;
  readonly configJson: string;
  readonly baseSha256: string;
  readonly loraJson: string;
  readonly boxPublicKey: Uint8Array;
  readonly boxSecretKey: Uint8Array;
}

/** An enrolled device. */
export interface StoredDevice {
  readonly id: string;
  readonly programId: string;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
  readonly label: string;
}

/** A round's terminal (or open) record. */
export interface StoredRound {
  readonly programId: string;
  readonly roundId: string;
  readonly roundNumber: number;
  readonly attempt: number;
  readonly state: 'open' | 'completed' | 'failed';
  /** The version the round produced (completed) or started from. */
  readonly adapterVersion: number;
  readonly updates: number;
  readonly selected: number;
  readonly failed: number;
  readonly bytesReceived: number;
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  readonly epsilonSpent: number;
  readonly message: string;
  readonly openedMs: number;
  readonly closedMs: number;
  /** The strategy's metrics of the round's aggregate (results, examples, clippedByServer, …); {} if it did not aggregate. */
  readonly metrics: Readonly<Record<string, number>>;
}

/** One round's privacy spend, written before its aggregate is released. */
export interface LedgerEntry {
  readonly programId: string;
  readonly roundId: string;
  readonly roundNumber: number;
  /** Sampling rate: each device's per-round inclusion probability (poisson). */
  readonly q: number;
  /** The declared population (dp.population): only the expected cohort q × population depends on it, not ε. */
  readonly population: number;
  /** The sampling scheme the round actually used ('' on rows written before schemes were recorded). */
  readonly scheme: string;
  /** Devices that checked in during the round's selection (each got its coin); −1 if unrecorded. */
  readonly eligible: number;
  /** Devices the sampling chose; −1 if unrecorded. */
  readonly selected: number;
  /** Effective noise multiplier of the round's sum. */
  readonly sigma: number;
  /** The program's ε after this round, at `delta`. */
  readonly epsilonAfter: number;
  readonly delta: number;
}

/** One adapter version of a program. */
export interface StoredVersion {
  readonly version: number;
  readonly sha256: string;
  readonly sizeBytes: number;
  /** The round that made it (0 for the initial adapter). */
  readonly roundNumber: number;
}

/** One release of a program (server/releases.ts): a signed manifest, or one awaiting its offline signature. */
export interface StoredRelease {
  readonly programId: string;
  readonly sequence: number;
  readonly version: number;
  readonly kind: 'version' | 'rollback';
  /** The manifest's canonical bytes. */
  readonly manifest: Uint8Array;
  /** Ed25519 by the program's release key; empty while awaiting an offline signature. */
  readonly signature: Uint8Array;
}

/** A program's state as an administrator set it (server/admin.ts); absent = running. */
export interface StoredProgramAdmin {
  readonly state: 'paused' | 'stopped';
  readonly reason: string;
  /** Who set it (the audit actor). */
  readonly actor: string;
  readonly updatedMs: number;
}

/** An enrolled device as the admin listing shows it. */
export interface ListedDevice extends StoredDevice {
  readonly enrolledMs: number;
  /** When an administrator revoked it (absent while it may take part). */
  readonly revokedMs?: number;
  readonly revokedBy?: string;
}

/** A program's release key: the public half always, the secret only when the coordinator signs. */
export interface StoredReleaseKey {
  readonly signing: 'coordinator' | 'offline';
  readonly publicKey: Uint8Array;
  readonly secretKey?: Uint8Array;
}
