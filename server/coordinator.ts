/**
 * The coordinator's domain service, independent of gRPC: programs and their runners, device
 * enrolment, request authentication (Ed25519 over the signing payload, fresh and used once),
 * and the validation an update passes before it reaches a round: authentic ciphertext, the
 * right encoding and size, finite values, and an L2 norm within the round's clip bound.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { decodeAdapterFile, encodeAdapterTensors } from '../model/adapter-file.js';
import { adapterFlatFromTensors, adapterTensorsFromFlat, initialAdapterFlat } from '../model/adapter-flat.js';
import { readBaseInfo, type BaseInfo } from '../model/base-info.js';
import { cryptoRng, type Rng } from '../random/rng.js';
import { noiseStd } from '../privacy/noise.js';
import { boxSharedKey, BOX_NONCE_BYTES, BOX_OVERHEAD_BYTES, type BoxKeyPair } from '../privacy/box.js';
import { RequestVerifier, type EnrolmentProof, type RequestSignature, type SigningScope, type VerifyResult } from '../privacy/sign.js';
import { ed25519KeyProblem, x25519KeyProblem } from '../privacy/key-check.js';
import { decodeMasked, encodedUpdateBytes, isUpdateEncoding, UPDATE_ENCODINGS, type UpdateEncoding } from '../proto/update-codec.js';
import { putBaseBlob, type BaseBlob } from './base-blob.js';
import { BlobStore, type StoredBlob } from './blob-store.js';
import { EnrolThrottle, type EnrolThrottleOptions } from './enrol-throttle.js';
import { CoordinatorError, quoted, refuse } from './errors.js';
import type { ProgramSpec } from './program-config.js';
import { ProgramRunner, type ComeBack, type RunnerHooks, type WorkOrder } from './program-runner.js';
import { DirectoryBlobBackend, openExecutor, PostgresBlobBackend, SqlStateStore, type BlobBackend, type StateStore, type StoredDevice, type StoredVersion } from './storage/index.js';
import { ProgramReleases, readInbox, settleInbox } from './releases.js';
import { parseReleaseFile, ReleaseError } from '../proto/release.js';
import { WorkerEvaluator } from './eval/evaluator.js';
import { checkNumExamples, intakeUpdate, openSealedUpdate, updateBound, updateLayout, type UpdateLayout } from './update-intake.js';
import { SharedIntake, sharesRounds } from './shared-intake.js';
import { Forwarder } from './forwarding.js';
import { executeForwarded } from './round-requests.js';
import type { RoundPlanRecord, StoredRound } from './storage/index.js';

/** Options of a {@link Coordinator}. */
export interface CoordinatorOptions {
  /** Folder for the database and blobs; created if missing. */
  readonly dataDir: string;
  readonly programs: readonly ProgramSpec[];
  /** How far a request's timestamp may be from the coordinator's clock. Default 5 minutes. */
  readonly maxClockSkewMs?: number;
  /** Signed requests one device (or enrolment key) may have remembered within the freshness window; past it, RESOURCE_EXHAUSTED. Default 20 000. */
  readonly maxNoncesPerSigner?: number;
  /** Throttling of wrong enrolment tokens (per peer address and overall). */
  readonly enrolThrottle?: EnrolThrottleOptions;
  /** Noise source for central DP. Default crypto randomness. */
  readonly rng?: Rng;
  /** Structured log sink. */
  readonly log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** How often the release inbox (`<dataDir>/releases/inbox/`) is read, ms. Default 1000. */
  readonly releaseInboxPollMs?: number;
  /** Observers of every program's round steps (see RunnerHooks); none by default. */
  readonly runnerHooks?: RunnerHooks;
  /**
   * Where the state lives: a SQLite file path or a postgres:// URL (shared by replicas). Default
   * `<dataDir>/coordinator.sqlite` (the single-node file).
   */
  readonly store?: string;
  /** Where blobs live: 'dir' (`<dataDir>/blobs`, the default) or 'postgres' (the state's database; needs a postgres:// store). */
  readonly blobs?: 'dir' | 'postgres';
  /** This replica's name in program leases (PostgreSQL). Default host, pid and a random suffix. */
  readonly replicaId?: string;
  /** How long a program's lease lasts unless renewed (renewed every third of it), ms. Default 15 000. */
  readonly leaseTtlMs?: number;
}

/** A program as the coordinator holds it. */
export interface ProgramState {
  readonly spec: ProgramSpec;
  /** Its blob: the base file, or a bundle of a Hugging Face directory (blob.container 'ustar'). */
  readonly base: BaseInfo & { readonly blob: BaseBlob };
  readonly tokenizer?: StoredBlob;
  readonly keys: BoxKeyPair;
  readonly runner: ProgramRunner;
  /** Where an update's values go in the flat adapter. */
  readonly layout: UpdateLayout;
  /** Values in an update: the whole adapter, or only its B blocks under FFA-LoRA (layout.updateLength). */
  readonly updateLength: number;
  /** Values in the flat adapter (layout.flatLength). */
  readonly flatLength: number;
  /** The plaintext encoding devices use: the program's compression, or "masked" under SecAgg. */
  readonly encoding: UpdateEncoding;
  /** SecAgg: values are clamped to ±this before fixed-point encoding (C plus noise headroom). */
  readonly secAggBound: number;
  /** The program's signed adapter releases and its release key. */
  readonly releases: ProgramReleases;
}

/** An enrolment as a device asks for it. */
export interface EnrolmentRequest {
  readonly programId: string;
  readonly token: string;
  readonly signPublicKey: Uint8Array;
  readonly boxPublicKey: Uint8Array;
  readonly label: string;
  /** Proof of possession of the signing key; null when the request carries none. */
  readonly proof: EnrolmentProof | null;
}

/** Coordinates every configured program. Call start() to open rounds and close() to stop. */
export class Coordinator {
  /** The durable state (server/storage/). */
  readonly store: StateStore;
  /** Local blobs: what devices download with `blobs: 'dir'`, the staging folder of bases with 'postgres'. */
  readonly blobs: BlobStore;
  /** Where devices' blobs are served from (the local folder, or PostgreSQL). */
  readonly blobBackend: BlobBackend;
  private readonly programs = new Map<string, ProgramState>();
  /** This replica's name in program leases. */
  readonly replicaId: string;
  /** Programs whose rounds this process drives (all of them on SQLite; those whose lease it holds on PostgreSQL). */
  private readonly driving = new Set<string>();
  private leaseTimer?: NodeJS.Timeout;
  private leaseBusy = false;
  /** Programs whose lease this process lost (it does not take them back: a restart does). */
  private readonly lost = new Set<string>();
  /** Set once stopPrograms ran. */
  private stopped = false;
  private readonly verifier: RequestVerifier;
  /** Enrolled devices by id (they never change after enrolment). */
  private readonly devices = new Map<string, StoredDevice>();
  /** X25519 shared keys device ↔ program, computed once per device. */
  private readonly sharedKeys = new Map<string, Uint8Array>();
  /** Requests signed before this start are refused: nonces seen before a restart are not remembered. */
  private readonly startedMs = Date.now();
  private readonly enrolThrottle: EnrolThrottle;
  /** What an enrolment token for an unknown program is compared with (so both refusals take one path). */
  private readonly decoyToken = randomBytes(24).toString('hex');
  /** Devices an administrator revoked (server/admin.ts): refused from their next request, for good. */
  private readonly revoked: Set<string>;
  /** When each device last made an authenticated request (ms since the epoch), since this process started. */
  readonly lastSeen = new Map<string, number>();
  /** Rounds every replica serves (PostgreSQL): check-ins and uploads claimed in the database. */
  private readonly shared?: SharedIntake;
  /** Round requests of programs that stay on their driver, forwarded to it through PostgreSQL (server/forwarding.ts). */
  readonly forwarder?: Forwarder;
  /** Open rounds a dead driver left, that this replica continues when it starts driving them (shared rounds). */
  private readonly toResume = new Map<string, { stored: StoredRound; plan: RoundPlanRecord }>();

  private constructor(
    private readonly o: CoordinatorOptions,
    store: StateStore,
    blobs: BlobStore,
    blobBackend: BlobBackend,
    revoked: readonly string[],
  ) {
    this.verifier = new RequestVerifier(o.maxClockSkewMs ?? 5 * 60_000, o.maxNoncesPerSigner);
    this.enrolThrottle = new EnrolThrottle(o.enrolThrottle);
    this.store = store;
    this.blobs = blobs;
    this.blobBackend = blobBackend;
    this.revoked = new Set(revoked);
    this.replicaId = o.replicaId ?? `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
    if (store.engine === 'postgres')
      this.shared = new SharedIntake({
        store,
        replicaId: this.replicaId,
        rng: o.rng ?? cryptoRng(),
        drives: (id) => this.driving.has(id),
        runnerOf: (id) => this.programs.get(id)?.runner,
        programIds: () => [...this.programs.keys()],
        onProgramOver: (id) => this.drivingChanged(id, this.driving.has(id)),
        log: o.log,
      });
    if (store.engine === 'postgres')
      this.forwarder = new Forwarder({
        store,
        replicaId: this.replicaId,
        drivesForwarded: (id) => this.driving.has(id) && this.programs.has(id) && !this.sharesRounds(id),
        drivenForwarded: () => [...this.driving].filter((id) => this.programs.has(id) && !this.sharesRounds(id)),
        execute: (r) => executeForwarded(this, r),
        log: o.log,
      });
  }

  /**
   * True if this replica forwards the program's round requests (check-in, upload, SecAgg stages)
   * to its driver: on PostgreSQL, for a program whose rounds are not shared, where it does not drive it.
   */
  forwards(programId: string): boolean {
    return this.forwarder !== undefined && this.programs.has(programId) && !this.driving.has(programId) && !this.sharesRounds(programId);
  }

  /** True if the program's rounds are served by every replica (PostgreSQL; not SecAgg or fixed-cohort programs). */
  sharesRounds(programId: string): boolean {
    const p = this.programs.get(programId);
    return p !== undefined && sharesRounds(p.spec, this.store.engine);
  }

  /**
   * True if this process serves the program's devices' round requests: where it drives them, on
   * every replica for shared rounds until it learns the program is over, and on every replica for
   * rounds whose requests it forwards to their driver (per-program health).
   */
  serves(programId: string): boolean {
    return this.driving.has(programId) || (this.sharesRounds(programId) && !(this.shared?.isOver(programId) ?? false)) || this.forwards(programId);
  }

  /**
   * Before driving a program: the round a dead driver left open. A shared round is continued (its
   * admissions and acknowledged updates are in the database; the newest open one, if it has its
   * plan); any other open round fails, as before.
   */
  private async takeOpenRounds(spec: ProgramSpec): Promise<number> {
    if (!sharesRounds(spec, this.store.engine)) return this.store.failOpenRounds(spec.id);
    const open = (await this.store.rounds(spec.id)).filter((r) => r.state === 'open');
    const newest = open.pop();
    const plan = newest ? await this.store.roundPlan(newest.roundId) : undefined;
    const now = Date.now();
    for (const r of plan ? open : [...open, ...(newest ? [newest] : [])]) await this.store.failRound({ ...r, state: 'failed', message: 'the coordinator restarted while the round was open', closedMs: now });
    if (newest && plan) this.toResume.set(spec.id, { stored: newest, plan });
    return open.length + (plan ? 0 : newest ? 1 : 0);
  }

  /** Start driving program `p`'s rounds here: continue the round a dead driver left, or open the next. */
  private startRunner(p: ProgramState): void {
    const r = this.toResume.get(p.spec.id);
    this.toResume.delete(p.spec.id);
    if (!r) return p.runner.start();
    p.runner.resumeRound(r.stored, r.plan).catch((e: unknown) => this.o.log?.('resuming the open round failed', { program: p.spec.id, round: r.stored.roundId, error: (e as Error).message }));
  }

  /**
   * UNAVAILABLE on a replica that does not drive a program whose rounds are not shared (SecAgg,
   * fixed-cohort): followers forward those requests to the driver (server/forwarding.ts), so this
   * answers only a request that reached a replica which lost the lease meanwhile; the device's
   * retry finds the new driver. For round requests (check-in, upload, SecAgg stages).
   */
  async refuseUnserved(p: ProgramState): Promise<void> {
    if (this.store.engine !== 'postgres' || this.driving.has(p.spec.id) || this.sharesRounds(p.spec.id)) return;
    const holder = (await this.store.lease(p.spec.id).catch(() => undefined))?.holder;
    refuse('unavailable', `program "${p.spec.id}"'s rounds (${p.spec.secagg ? 'secure aggregation' : `${p.spec.sampling.scheme} sampling`}) are driven by replica ${holder ?? '(none yet)'}, not by ${this.replicaId}; try another coordinator address`);
  }

  private get leaseTtlMs(): number {
    return this.o.leaseTtlMs ?? 15_000;
  }

  /**
   * Whether this process drives the program's rounds: on SQLite always (the file is this process's
   * alone); on PostgreSQL if it takes the program's lease — exactly one replica drives a program,
   * the others serve its devices' other requests.
   */
  private async takeLease(programId: string): Promise<boolean> {
    if (this.store.engine !== 'postgres') return true;
    return this.store.acquireLease(programId, this.replicaId, this.leaseTtlMs);
  }

  /** Renew the leases held (and try to take free ones) every third of their time to live, from the first one taken on. */
  private keepLeases(): void {
    if (this.store.engine !== 'postgres' || this.leaseTimer || this.stopped) return;
    this.leaseTimer = setInterval(() => {
      if (this.leaseBusy) return;
      this.leaseBusy = true;
      this.renewLeases().finally(() => (this.leaseBusy = false));
    }, Math.max(50, this.leaseTtlMs / 3));
    this.leaseTimer.unref();
  }

  /** True if this process drives the program's rounds (see takeLease). */
  drives(programId: string): boolean {
    return this.driving.has(programId);
  }

  private readonly drivingListeners = new Set<(programId: string, driving: boolean) => void>();

  /** Call `listener` whenever this process starts or stops driving a program (PostgreSQL leases); returns the unsubscribe. */
  onDrivingChange(listener: (programId: string, driving: boolean) => void): () => void {
    this.drivingListeners.add(listener);
    return () => this.drivingListeners.delete(listener);
  }

  private drivingChanged(programId: string, driving: boolean): void {
    for (const l of this.drivingListeners) l(programId, driving);
  }

  /** Renew the leases held; a program whose lease was lost (another replica took it after it expired) stops here. */
  private async renewLeases(): Promise<void> {
    for (const id of [...this.driving]) {
      let held: boolean;
      try {
        held = await this.store.renewLease(id, this.replicaId, this.leaseTtlMs);
      } catch (e) {
        this.o.log?.('lease renewal failed', { program: id, error: (e as Error).message });
        continue; // retried at the next tick; the lease may still be ours
      }
      if (!held && this.driving.delete(id)) {
        this.lost.add(id); // its runner has stopped for good in this process
        this.o.log?.('program lease lost: this replica stops driving its rounds', { program: id, replica: this.replicaId });
        this.programs.get(id)?.runner.stop();
        this.drivingChanged(id, false);
      }
    }
    for (const p of this.programs.values()) {
      if (this.driving.has(p.spec.id) || this.lost.has(p.spec.id)) continue;
      await this.takeOverIfFree(p).catch((e: unknown) => this.o.log?.('taking a program over failed', { program: p.spec.id, error: (e as Error).message }));
    }
    // revocations made through other replicas
    try {
      for (const id of await this.store.revokedDeviceIds()) this.revoked.add(id);
    } catch (e) {
      this.o.log?.('reading revocations failed', { error: (e as Error).message });
    }
  }

  /**
   * Open the state (`o.store`, default the SQLite file in the data dir; migrated at open) and the
   * blobs, and register every program: a coordinator ready to start().
   */
  static async open(o: CoordinatorOptions): Promise<Coordinator> {
    if (!o || typeof o.dataDir !== 'string' || o.dataDir === '') throw new TypeError('Coordinator.open: options.dataDir must be a folder path');
    if (!Array.isArray(o.programs) || o.programs.length === 0) throw new RangeError('Coordinator.open: options.programs must list at least one program');
    if (o.store !== undefined && (typeof o.store !== 'string' || o.store === '')) throw new TypeError('Coordinator.open: options.store must be a SQLite file path or a postgres:// URL');
    if (o.blobs !== undefined && o.blobs !== 'dir' && o.blobs !== 'postgres') throw new RangeError(`Coordinator.open: options.blobs must be "dir" or "postgres", got ${JSON.stringify(o.blobs)}`);
    mkdirSync(o.dataDir, { recursive: true });
    const db = await openExecutor(o.store ?? join(o.dataDir, 'coordinator.sqlite'));
    const store = new SqlStateStore(db);
    try {
      if (o.blobs === 'postgres' && db.engine !== 'postgres') throw new RangeError('Coordinator.open: options.blobs "postgres" needs a postgres:// store');
      const local = new DirectoryBlobBackend(join(o.dataDir, 'blobs'));
      const backend: BlobBackend = o.blobs === 'postgres' ? new PostgresBlobBackend(db) : local;
      const c = new Coordinator(o, store, local.store, backend, await store.revokedDeviceIds());
      for (const spec of o.programs) c.programs.set(spec.id, await c.register(spec));
      return c;
    } catch (e) {
      await store.close();
      throw e;
    }
  }

  /** A file blob of the local folder, also put in the serving backend (when that is not the folder). */
  private async served(blob: StoredBlob): Promise<void> {
    if (this.blobBackend instanceof DirectoryBlobBackend) return;
    if (!(await this.blobBackend.has(blob.sha256))) await this.blobBackend.putFile(join(this.blobs.dir, blob.sha256));
  }

  private async register(spec: ProgramSpec): Promise<ProgramState> {
    const info = readBaseInfo(spec.basePath);
    const baseBlob = putBaseBlob(this.blobs, spec.basePath, info);
    await this.served(baseBlob);
    if (info.format === 'llama2c' && !spec.tokenizerPath) throw new RangeError(`program "${spec.id}": its llama2.c base needs a tokenizer file`);
    // a GGUF base carries its own vocabulary unless the program names a tokenizer file to use instead
    const tokenizer = spec.tokenizerPath ? this.blobs.putFile(spec.tokenizerPath) : undefined;
    if (tokenizer) await this.served(tokenizer);
    const loraJson = JSON.stringify(spec.lora);
    let stored = await this.store.program(spec.id);
    if (!stored) {
      const keys = nacl.box.keyPair();
      const flat = initialAdapterFlat(info.config, spec.lora);
      const blob = await this.blobBackend.put(encodeAdapterTensors({ baseSha256: info.sha256, lora: spec.lora, baseConfig: info.config }, adapterTensorsFromFlat(info.config, spec.lora, flat)));
      stored = { id: spec.id, configJson: JSON.stringify(spec), baseSha256: info.sha256, loraJson, boxPublicKey: keys.publicKey, boxSecretKey: keys.secretKey };
      await this.store.createProgram(stored, { sha256: blob.sha256, sizeBytes: blob.size });
    } else {
      if (stored.baseSha256 !== info.sha256) throw new RangeError(`program "${spec.id}": its base was ${stored.baseSha256.slice(0, 12)}… when its rounds began, the config now names ${info.sha256.slice(0, 12)}…; use a new program id for a new base`);
      if (stored.loraJson !== loraJson) throw new RangeError(`program "${spec.id}": its LoRA config changed since its rounds began (${stored.loraJson} → ${loraJson}); use a new program id`);
      await this.store.updateProgramConfig(spec.id, JSON.stringify(spec));
    }
    if (await this.takeLease(spec.id)) {
      this.driving.add(spec.id);
      this.keepLeases(); // registering the other programs may take longer than the lease
      // a round left open is a dead driver's (a crash, or the lease holder before this one)
      await this.takeOpenRounds(spec);
    }
    const releases = await ProgramReleases.load(spec, this.store, info.sha256, this.o.dataDir);
    const newestVersion = await this.store.latestVersion(spec.id);
    // every version is released; a program from before releases gets one for its newest version
    if ((releases.newest()?.version ?? -1) < newestVersion.version || releases.newest() === undefined) {
      const epsilon = (await this.store.ledger(spec.id)).pop()?.epsilonAfter ?? 0;
      const rel = releases.forVersion(newestVersion, 'version', epsilon);
      await this.store.addRelease(rel);
      releases.mirror(rel);
    }
    const { latest, global } = await this.currentAdapter(spec, info.config, releases, newestVersion);
    const layout = updateLayout(info.config, spec.lora);
    // values are clamped to C plus six standard deviations of the device's own noise share
    const secAggBound = spec.dp.clipNorm + (spec.dp.mode === 'distributed' ? 6 * noiseStd('distributed', spec.dp.noiseMultiplier, spec.dp.clipNorm, spec.cohortSize) : 0);
    const runner = await ProgramRunner.create({
      releases,
      current: latest,
      secAggBound,
      spec,
      baseConfig: info.config,
      baseSha256: info.sha256,
      store: this.store,
      blobs: this.blobBackend,
      global,
      rng: this.o.rng ?? cryptoRng(),
      log: this.o.log,
      hooks: this.o.runnerHooks,
      evaluator: spec.eval ? new WorkerEvaluator(spec, info.config) : undefined,
      layout,
      shared: sharesRounds(spec, this.store.engine) ? { replicaId: this.replicaId } : undefined,
      // SecAgg adverts come from devices that authenticated here first (their records are cached);
      // SQLite can also look one up synchronously
      signKeyOf: (deviceId) => {
        const d = this.devices.get(deviceId) ?? this.store.deviceNow?.(deviceId);
        if (!d) throw new Error(`unknown device ${deviceId}`);
        return d.signPublicKey;
      },
    });
    // an administrator's pause or stop outlives restarts (server/admin.ts)
    const admin = await this.store.programAdmin(spec.id);
    if (admin?.state === 'paused') runner.pause(admin.reason);
    else if (admin?.state === 'stopped') runner.halt(admin.reason);
    const encoding: UpdateEncoding = spec.secagg ? 'masked' : spec.compression === 'none' ? 'f32' : spec.compression;
    return { spec, base: { ...info, blob: baseBlob }, tokenizer, keys: { publicKey: stored.boxPublicKey, secretKey: stored.boxSecretKey }, runner, layout, updateLength: layout.updateLength, flatLength: layout.flatLength, encoding, secAggBound, releases };
  }

  /** The version rounds start from — the one the newest release names (an older one after a rollback) — and its values. */
  private async currentAdapter(spec: ProgramSpec, config: BaseInfo['config'], releases: ProgramReleases, newestVersion: StoredVersion): Promise<{ latest: StoredVersion; global: Float32Array }> {
    const latest = (await this.store.version(spec.id, (releases.newest() as { version: number }).version)) ?? newestVersion;
    // read once and check the bytes against their name (rather than hashing the file, then reading it again)
    const bytes = (await this.blobBackend.has(latest.sha256)) ? await this.readBlob(latest.sha256) : undefined;
    if (!bytes || createHash('sha256').update(bytes).digest('hex') !== latest.sha256) throw new Error(`program "${spec.id}": adapter version ${latest.version}'s blob ${latest.sha256} is missing or damaged in ${this.blobWhere()}`);
    const { tensors } = decodeAdapterFile(bytes, `adapter version ${latest.version}`);
    return { latest, global: adapterFlatFromTensors(config, spec.lora, tensors) };
  }

  /**
   * Take the lease of a program this replica serves but does not drive, if it is free (its
   * driver shut down or died and the lease expired): the round it left open fails, the program's
   * state is read again, and its rounds run here from now on.
   */
  private async takeOverIfFree(p: ProgramState): Promise<void> {
    const id = p.spec.id;
    if (this.driving.has(id) || this.stopped || !(await this.takeLease(id))) return;
    this.driving.add(id);
    try {
      const failed = await this.takeOpenRounds(p.spec);
      await p.releases.reload();
      const { latest, global } = await this.currentAdapter(p.spec, p.base.config, p.releases, await this.store.latestVersion(id));
      await p.runner.takeOver(latest, global);
      const admin = await this.store.programAdmin(id);
      if (admin?.state === 'paused') p.runner.pause(admin.reason);
      else if (admin?.state === 'stopped') p.runner.halt(admin.reason);
      this.o.log?.('program lease taken: this replica drives its rounds', { program: id, replica: this.replicaId, version: latest.version, failedOpenRounds: failed });
      if (!this.stopped) this.startRunner(p);
      this.drivingChanged(id, true);
    } catch (e) {
      this.driving.delete(id);
      await this.store.releaseLease(id, this.replicaId).catch(() => false);
      throw e;
    }
  }

  /** The flat values of one adapter version, read from its blob (checked against its name). */
  private async versionValues(p: ProgramState, version: number): Promise<{ record: StoredVersion; global: Float32Array }> {
    const record = await this.store.version(p.spec.id, version);
    if (!record) throw new ReleaseError(`program ${p.spec.id} has no adapter version ${version}`);
    const bytes = await this.readBlob(record.sha256);
    if (createHash('sha256').update(bytes).digest('hex') !== record.sha256) throw new ReleaseError(`adapter version ${version}'s blob is damaged in ${this.blobWhere()}`);
    const { tensors } = decodeAdapterFile(bytes, `adapter version ${version}`);
    return { record, global: adapterFlatFromTensors(p.base.config, p.spec.lora, tensors) };
  }

  /**
   * Take the release files waiting in `<dataDir>/releases/inbox/`: offline signatures of the
   * release a program awaits, and rollbacks. Each is published or refused (moved to done/ or
   * refused/ with its sentence); a rollback that arrives while its program aggregates stays for
   * the next poll. Returns what was settled.
   */
  async processReleaseInbox(): Promise<{ published: string[]; refused: string[] }> {
    const out = { published: [] as string[], refused: [] as string[] };
    for (const f of readInbox(this.o.dataDir)) {
      try {
        if (f.problem !== undefined) throw new ReleaseError(f.problem);
        const signed = parseReleaseFile(f.text, `release inbox file ${f.name}`);
        const programId = (JSON.parse(new TextDecoder().decode(signed.manifest)) as { program?: unknown }).program;
        const p = typeof programId === 'string' ? this.programs.get(programId) : undefined;
        if (!p) throw new ReleaseError(`no program ${JSON.stringify(programId)} on this coordinator`);
        const { release, rollbackTo } = await p.releases.submitted(signed, p.runner.epsilonSpent());
        if (rollbackTo) {
          const { global } = await this.versionValues(p, rollbackTo.version);
          if (p.runner.isAggregating) continue; // settled at the next poll
          await this.store.addRelease(release);
          p.releases.mirror(release);
          p.runner.rollbackTo(rollbackTo, global);
        }
        settleInbox(this.o.dataDir, f.name);
        out.published.push(f.name);
        this.o.log?.('release published', { program: p.spec.id, sequence: release.sequence, version: release.version, kind: release.kind });
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        settleInbox(this.o.dataDir, f.name, why);
        out.refused.push(f.name);
        this.o.log?.('release refused', { file: f.name, reason: why });
      }
    }
    return out;
  }

  private async readBlob(sha256: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for await (const c of this.blobBackend.readChunks(sha256)) parts.push(c.data);
    return Buffer.concat(parts);
  }

  /** Where blobs are, for messages. */
  private blobWhere(): string {
    return this.blobBackend instanceof DirectoryBlobBackend ? this.blobs.dir : 'the PostgreSQL blob store';
  }

  /** Open rounds for every program (resuming after the last completed one); resolves once each first round is open (or waits). */
  async start(): Promise<void> {
    await this.shared?.listen();
    await this.forwarder?.listen();
    for (const p of this.programs.values()) if (this.driving.has(p.spec.id)) this.startRunner(p);
    this.keepLeases();
    if (!this.inboxTimer) {
      this.inboxTimer = setInterval(() => {
        if (this.inboxBusy) return;
        this.inboxBusy = true;
        this.processReleaseInbox()
          .catch((e: unknown) => this.o.log?.('release inbox unreadable', { error: (e as Error).message }))
          .finally(() => (this.inboxBusy = false));
      }, this.o.releaseInboxPollMs ?? 1000);
      this.inboxTimer.unref();
    }
    await Promise.all([...this.programs.values()].map((p) => p.runner.settled()));
  }

  private inboxTimer?: NodeJS.Timeout;
  private inboxBusy = false;
  private nonceTimer?: NodeJS.Timeout;

  /** Stop every program's timers and complete its event streams (the database stays open). */
  stopPrograms(): void {
    this.stopped = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    this.leaseTimer = undefined;
    if (this.inboxTimer) clearInterval(this.inboxTimer);
    this.inboxTimer = undefined;
    for (const p of this.programs.values()) p.runner.stop();
  }

  /** Stop every program, let the round steps in flight finish, and close the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopPrograms();
      if (this.nonceTimer) clearInterval(this.nonceTimer);
      await Promise.all([...this.programs.values()].map((p) => p.runner.settled()));
      // another replica may drive at once rather than after the lease expires
      if (this.store.engine === 'postgres') for (const id of this.driving) await this.store.releaseLease(id, this.replicaId).catch(() => false);
      await this.shared?.close();
      await this.forwarder?.close();
      await this.store.close();
    })();
    return this.closing;
  }

  private closing?: Promise<void>;

  /** A configured program; NOT_FOUND otherwise. */
  program(id: string): ProgramState {
    const p = this.programs.get(id);
    if (!p) refuse('not-found', `no program "${quoted(id)}" on this coordinator`);
    return p;
  }

  /** Every configured program id. */
  programIds(): string[] {
    return [...this.programs.keys()];
  }

  /**
   * Enrol a device: the program's token, usable public keys, and a fresh, unused proof that the
   * caller holds the signing key. An unknown program and a wrong token get the same refusal by
   * the same path; wrong tokens are throttled per peer address (`peer`) and overall.
   */
  async enroll(r: EnrolmentRequest, peer = 'local', now = Date.now()): Promise<{ deviceId: string; programBoxPublicKey: Uint8Array; releasePublicKey: Uint8Array }> {
    if (r.signPublicKey.length !== nacl.sign.publicKeyLength) refuse('invalid-argument', `sign_public_key must be ${nacl.sign.publicKeyLength} bytes (Ed25519), got ${r.signPublicKey.length}`);
    if (r.boxPublicKey.length !== nacl.box.publicKeyLength) refuse('invalid-argument', `box_public_key must be ${nacl.box.publicKeyLength} bytes (X25519), got ${r.boxPublicKey.length}`);
    if (r.label.length > 200) refuse('invalid-argument', `label must be at most 200 characters, got ${r.label.length}`);
    const wait = this.enrolThrottle.waitMs(peer, now);
    if (wait > 0) refuse('resource-exhausted', `too many wrong enrolment tokens from this address or overall; retry in ${Math.ceil(wait / 1000)} s`);
    const p = this.programs.get(r.programId);
    const tokenOk = sameSecret(r.token, p ? p.spec.enrolmentToken : this.decoyToken);
    if (!p || !tokenOk) {
      this.enrolThrottle.fail(peer, now);
      refuse('permission-denied', 'the program id or the enrolment token is wrong');
    }
    const signProblem = ed25519KeyProblem(r.signPublicKey);
    if (signProblem) refuse('invalid-argument', `sign_public_key is not a usable Ed25519 key: ${signProblem}`);
    const boxProblem = x25519KeyProblem(r.boxPublicKey);
    if (boxProblem) refuse('invalid-argument', `box_public_key is not a usable X25519 key: ${boxProblem}`);
    if (!r.proof) refuse('unauthenticated', 'the enrolment carries no proof of possession of sign_public_key (EnrollRequest.proof); see CONTRACT.md');
    this.refuseUnfresh(r.proof.timestamp, now);
    const v = this.verifier.verifyEnrolment(r.proof, r.programId, r.signPublicKey, r.boxPublicKey, now);
    if (v !== 'ok') refuse(v === 'too-many' ? 'resource-exhausted' : 'unauthenticated', this.why(v, 'the enrolment proof', 'sign_public_key', r.proof.timestamp, now));
    await this.claimNonce(`enrol:${Buffer.from(r.signPublicKey).toString('hex')}`, r.proof.nonce, r.proof.timestamp, 'the enrolment proof');
    const newId = `dev-${randomBytes(12).toString('hex')}`;
    const d = await this.store.enrollDevice({ id: newId, programId: p.spec.id, signPublicKey: r.signPublicKey, boxPublicKey: r.boxPublicKey, label: r.label });
    if (!bytesEqual(d.boxPublicKey, r.boxPublicKey)) refuse('already-exists', 'this signing key is enrolled with another box key');
    this.refuseRevoked(d.id);
    this.devices.set(d.id, d);
    if (d.id === newId) p.runner.noteEnrolment();
    this.o.log?.('device enrolled', { program: p.spec.id, device: d.id, label: r.label });
    return { deviceId: d.id, programBoxPublicKey: p.keys.publicKey, releasePublicKey: p.releases.key.publicKey };
  }

  /** UNAUTHENTICATED for a timestamp outside the clock skew, or (within it) from before this coordinator started. */
  private refuseUnfresh(timestamp: number, now: number): void {
    if (!Number.isSafeInteger(timestamp)) refuse('unauthenticated', `the timestamp ${timestamp} is not a safe integer of milliseconds`);
    const off = Math.abs(now - timestamp);
    if (off > this.verifier.maxSkewMs) refuse('unauthenticated', this.why('stale', 'the request', '', timestamp, now));
    // nonces seen before a restart are not remembered: refuse what was signed before it
    if (timestamp < this.startedMs) refuse('unauthenticated', 'the request was signed before the coordinator (re)started, so its nonce cannot be checked; sign it again');
  }

  private why(v: Exclude<VerifyResult, 'ok'>, what: string, key: string, timestamp: number, now: number): string {
    return {
      malformed: `${what}'s signature or nonce is malformed (nonce: 16–64 bytes of lowercase hex; signature: 64 bytes)`,
      'bad-signature': `${what}'s signature does not verify for ${key}`,
      stale: `the request timestamp is ${Math.round(Math.abs(now - timestamp) / 1000)} s from the coordinator's clock (at most ${Math.round(this.verifier.maxSkewMs / 1000)} s allowed); check the device's clock`,
      replayed: `${what} was already received (replayed nonce); sign it again with a new nonce`,
      'too-many': `${what} comes after ${this.verifier.maxNoncesPerSigner} others signed by the same key within ${Math.round((2 * this.verifier.maxSkewMs) / 60_000)} minutes; slow down`,
    }[v];
  }

  /**
   * Authenticate a signed request for `scope` (the full method name, and the program the request
   * names; for DownloadBlob, which names none, the device's own): the device exists, the signature
   * covers `payload`, the timestamp is fresh and the nonce new. Returns the device;
   * UNAUTHENTICATED otherwise.
   */
  async authenticate(sig: RequestSignature | null | undefined, scope: { method: string; programId?: string }, payload: Uint8Array, now = Date.now()): Promise<StoredDevice> {
    if (!sig || !sig.deviceId) refuse('unauthenticated', 'the request is not signed (auth is missing)');
    let device = this.devices.get(sig.deviceId);
    if (!device) {
      device = await this.store.device(sig.deviceId);
      if (!device) refuse('unauthenticated', `unknown device "${quoted(sig.deviceId)}"; enrol first`);
      this.devices.set(device.id, device);
    }
    this.refuseUnfresh(sig.timestamp, now);
    const full: SigningScope = { method: scope.method, programId: scope.programId ?? device.programId };
    const v = this.verifier.verify(sig, full, payload, device.signPublicKey, now);
    if (v === 'ok') {
      await this.claimNonce(device.id, sig.nonce, sig.timestamp, 'this request');
      this.lastSeen.set(device.id, now);
      this.refuseRevoked(device.id);
      return device;
    }
    if (v === 'too-many') refuse('resource-exhausted', this.why(v, 'this request', '', sig.timestamp, now));
    return refuse('unauthenticated', v === 'bad-signature' ? `the signature does not verify for device ${device.id} (it must cover this method, program and payload)` : this.why(v, 'this request', '', sig.timestamp, now));
  }

  /**
   * Claim a signed request's nonce in the database (PostgreSQL: replicas share it, so a request
   * replayed to another replica is refused). The in-process verifier checked it first (a cheap
   * front); on SQLite it is the whole check, as the file is locked by this one process and
   * requests signed before its start are refused.
   */
  private async claimNonce(signer: string, nonce: string, timestamp: number, what: string): Promise<void> {
    if (this.store.engine !== 'postgres') return;
    const fresh = await this.store.claimNonce(signer, nonce, timestamp + this.verifier.maxSkewMs + 1);
    if (!fresh) refuse('unauthenticated', this.why('replayed', what, '', timestamp, Date.now()));
    if (!this.nonceTimer) {
      // expired nonces are refused as stale anyway: forget them now and then
      this.nonceTimer = setInterval(() => {
        this.store.purgeExpiredNonces(Date.now()).catch((e: unknown) => this.o.log?.('nonce purge failed', { error: (e as Error).message }));
      }, Math.max(10_000, this.verifier.maxSkewMs));
      this.nonceTimer.unref();
    }
  }

  /**
   * The device of a request another replica authenticated and forwarded here (server/forwarding.ts):
   * UNAUTHENTICATED if it is not enrolled, PERMISSION_DENIED if revoked.
   */
  async forwardedDevice(deviceId: string, now = Date.now()): Promise<StoredDevice> {
    let device = this.devices.get(deviceId);
    if (!device) {
      device = await this.store.device(deviceId);
      if (!device) refuse('unauthenticated', `unknown device "${quoted(deviceId)}"; enrol first`);
      this.devices.set(device.id, device);
    }
    this.lastSeen.set(device.id, now);
    this.refuseRevoked(device.id);
    return device;
  }

  /** An enrolled device this process has authenticated (cached; undefined otherwise). */
  knownDevice(deviceId: string): StoredDevice | undefined {
    return this.devices.get(deviceId);
  }

  /** True if an administrator revoked the device. */
  isRevoked(deviceId: string): boolean {
    return this.revoked.has(deviceId);
  }

  /** PERMISSION_DENIED for a revoked device. */
  private refuseRevoked(deviceId: string): void {
    if (this.revoked.has(deviceId)) refuse('permission-denied', `device ${deviceId} was revoked by the coordinator's administrator and may not take part any more; enrol a new identity if this is a mistake`);
  }

  /**
   * Revoke a device for good (recorded in the store): its next request is refused and its update
   * in the open round, if in flight, is dropped. Returns false if it was already revoked.
   */
  async revokeDevice(deviceId: string, reason: string, actor: string): Promise<boolean> {
    const d = await this.store.device(deviceId);
    if (!d) refuse('not-found', `no device "${quoted(deviceId)}" on this coordinator`);
    if (this.revoked.has(deviceId)) return false;
    await this.store.revokeDevice(deviceId, d.programId, reason, actor);
    this.revoked.add(deviceId);
    this.programs.get(d.programId)?.runner.drop(deviceId, `device revoked: ${reason}`);
    return true;
  }

  /**
   * The program a device belongs to, checked against the one it names. Any other name is
   * PERMISSION_DENIED, whether such a program exists or not: a device learns nothing about the
   * coordinator's other programs.
   */
  programOf(device: StoredDevice, programId: string): ProgramState {
    if (device.programId !== programId) refuse('permission-denied', `device ${device.id} is not enrolled in program "${quoted(programId)}"`);
    return this.program(programId);
  }

  /** May this device download this blob? (its program's base, tokenizer or an adapter version) */
  async authorizeBlob(device: StoredDevice, sha256: string): Promise<void> {
    const p = this.program(device.programId);
    if (sha256 === p.base.blob.sha256 || sha256 === p.tokenizer?.sha256 || sha256 === p.runner.latestVersion.sha256 || (await this.store.programHasBlob(p.spec.id, sha256))) return;
    refuse('permission-denied', `blob ${quoted(sha256)} does not belong to program "${p.spec.id}"`);
  }

  /**
   * A device asks program `p` for work (ProgramRunner.checkIn). On PostgreSQL a new selection is
   * also claimed in the database (round_participants): a device is in a round at most once,
   * whichever replica it reaches; if another replica admitted it already, this selection is
   * withdrawn and the device told so.
   */
  async checkIn(p: ProgramState, deviceId: string): Promise<WorkOrder | ComeBack> {
    if (this.shared && this.sharesRounds(p.spec.id)) {
      try {
        return await this.shared.checkIn(p.spec, p.runner, deviceId);
      } catch (e) {
        if (e instanceof CoordinatorError) throw e;
        // the database did not answer: the device retries (here, or at its next address)
        this.o.log?.('a shared check-in failed', { program: p.spec.id, device: deviceId, error: (e as Error).message });
        return refuse('unavailable', `the check-in could not be recorded just now (${(e as Error).message}); try again`);
      }
    }
    await this.refuseUnserved(p);
    const known = p.runner.isSelected(deviceId);
    const w = p.runner.checkIn(deviceId);
    if (known || !('roundId' in w) || this.store.engine !== 'postgres') return w;
    if (await this.store.claimParticipation(w.roundId, deviceId)) return w;
    p.runner.unselect(deviceId, w.roundId);
    return { retryAfterMs: Math.max(200, w.deadlineUnixMs - Date.now()), reason: `this device already takes part in round ${w.roundId} (admitted by another replica)`, programComplete: false };
  }

  /** The size of a sealed update payload for an encoding. */
  sealedBytes(p: ProgramState, encoding: string): number {
    if (!isUpdateEncoding(encoding)) refuse('invalid-argument', `unknown update encoding "${quoted(encoding)}"; this coordinator takes ${UPDATE_ENCODINGS.join(', ')}`);
    if (encoding !== p.encoding) refuse('invalid-argument', `program "${p.spec.id}" takes "${p.encoding}" updates (its compression), not "${quoted(encoding)}"`);
    return BOX_NONCE_BYTES + BOX_OVERHEAD_BYTES + encodedUpdateBytes(encoding, p.updateLength);
  }

  /**
   * Decrypt and validate an update (server/update-intake.ts); on success it joins the round
   * (the runner checks, as it commits, that the device may upload to it). Any rejection also
   * marks the device failed for the round, and leaves the global adapter unchanged. `sealed` is
   * decrypted in place (its bytes are overwritten): pass a buffer the caller gives up.
   */
  acceptUpdate(device: StoredDevice, p: ProgramState, roundId: string, encoding: string, numExamples: number, sealed: Uint8Array, unclipped = true): void | Promise<void> {
    if (this.shared && this.sharesRounds(p.spec.id)) return this.acceptShared(device, p, roundId, encoding, numExamples, sealed, unclipped);
    const runner = p.runner;
    try {
      this.refuseRevoked(device.id);
      let shared = this.sharedKeys.get(device.id);
      if (!shared) {
        shared = boxSharedKey(device.boxPublicKey, p.keys);
        this.sharedKeys.set(device.id, shared);
      }
      const plain = openSealedUpdate(sealed, shared, true);
      if (encoding === 'masked') return runner.acceptMasked(device.id, roundId, decodeMasked(plain, p.updateLength), sealed.length);
      const { update } = intakeUpdate(encoding, plain, p.layout, updateBound(runner.roundClipNorm(roundId), p.spec.maxUpdateNorm, p.layout, runner.roundDeviceNoiseStd(roundId)), true);
      checkNumExamples(numExamples, p.spec.training);
      runner.submit(device.id, roundId, update, numExamples, sealed.length, unclipped);
    } catch (e) {
      runner.reject(device.id, roundId, (e as Error).message, e instanceof CoordinatorError ? e.kind : 'invalid-argument');
      throw e;
    }
  }

  /**
   * May this device upload to this round now? (the header's check; see ProgramRunner.expectUpload,
   * and SharedIntake.expectUpload for shared rounds). Resolves with the round's deadline, ms.
   */
  async expectUpload(p: ProgramState, deviceId: string, roundId: string): Promise<number> {
    if (this.shared && this.sharesRounds(p.spec.id)) return (await this.shared.expectUpload(p.spec, roundId)).deadlineMs;
    await this.refuseUnserved(p);
    p.runner.expectUpload(deviceId, roundId);
    return p.runner.roundDeadline(roundId) ?? 0;
  }

  /** An upload was refused (`kind`: the refusal's kind): a selected device's failure in the round, on every replica for shared rounds. */
  rejectUpload(p: ProgramState, deviceId: string, roundId: string, reason: string, kind: string): void {
    p.runner.reject(deviceId, roundId, reason, kind);
    if (this.shared && this.sharesRounds(p.spec.id)) this.shared.reject(p.spec, deviceId, roundId).catch((e: unknown) => this.o.log?.('recording a rejected update failed', { program: p.spec.id, device: deviceId, error: (e as Error).message }));
  }

  /** acceptUpdate for shared rounds: validated against the round's stored plan, durable in the database before it resolves. */
  private async acceptShared(device: StoredDevice, p: ProgramState, roundId: string, encoding: string, numExamples: number, sealed: Uint8Array, unclipped: boolean): Promise<void> {
    const shared = this.shared as SharedIntake;
    let update: Float32Array;
    try {
      this.refuseRevoked(device.id);
      const plan = await shared.expectUpload(p.spec, roundId);
      let key = this.sharedKeys.get(device.id);
      if (!key) {
        key = boxSharedKey(device.boxPublicKey, p.keys);
        this.sharedKeys.set(device.id, key);
      }
      const plain = openSealedUpdate(sealed, key, true);
      ({ update } = intakeUpdate(encoding, plain, p.layout, updateBound(plan.clipNorm, p.spec.maxUpdateNorm, p.layout, plan.deviceNoiseStd), true));
      checkNumExamples(numExamples, p.spec.training);
    } catch (e) {
      if (!(e instanceof CoordinatorError) || e.kind !== 'unavailable') this.rejectUpload(p, device.id, roundId, (e as Error).message, e instanceof CoordinatorError ? e.kind : 'invalid-argument');
      throw e;
    }
    try {
      await shared.accept(p.spec, device.id, roundId, update, p.spec.dp.mode === 'none' ? numExamples : 1, unclipped, sealed.length);
    } catch (e) {
      if (e instanceof CoordinatorError) {
        this.rejectUpload(p, device.id, roundId, e.message, e.kind);
        throw e;
      }
      // the database did not take it (nothing is stored): not the device's fault — it may retry, here or elsewhere
      this.o.log?.('storing an accepted update failed', { program: p.spec.id, device: device.id, round: roundId, error: (e as Error).message });
      refuse('unavailable', `the update could not be stored just now (${(e as Error).message}); send it again`);
    }
  }

  private readonly releasesReadMs = new Map<string, number>();

  /**
   * On a replica that does not drive the program (PostgreSQL): read its releases again — the
   * driver publishes one with each version — at most once a second unless `force` (a work order
   * names a version whose release this replica has not read yet). A no-op where it drives.
   */
  async refreshReleases(p: ProgramState, force = false): Promise<void> {
    if (this.store.engine !== 'postgres' || this.driving.has(p.spec.id)) return;
    const last = this.releasesReadMs.get(p.spec.id) ?? 0;
    if (!force && Date.now() - last < 1000) return;
    this.releasesReadMs.set(p.spec.id, Date.now());
    await p.releases.reload();
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Constant-time comparison of two secrets of any lengths (their SHA-256 digests are compared). */
function sameSecret(a: string, b: string): boolean {
  const h = (x: string): Buffer => createHash('sha256').update(x, 'utf8').digest();
  return timingSafeEqual(h(a), h(b));
}
