/**
 * The device library: enrol once (keys in the data dir), fetch the program, download and verify
 * the base, tokenizer and current adapter (resumable), then loop — check in, train LoRA on the
 * device's own text (or, for a chat program, its chat conversations rendered with the base's chat
 * format, loss on assistant replies only: client/local-data) within the round's deadline, turn the change into an update
 * (client/build-update: delta vs the global adapter → clip → device noise if the program asks →
 * quantize → seal to the program key), upload it in chunks (or mask it under secure
 * aggregation), and follow new versions — until the program completes. Transient failures are
 * retried with backoff; progress is an rxjs Observable.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { Observable, Subject } from 'rxjs';
import { baseChatStyle, cryptoRng, decodeAdapter, initBackend, localTrainerFactory, LoraAdapter, mixReplay, truncateRankTensors, sampleReplayPool, openBase, type ChatStyle, type DataFormat, type DeviceTrainerFactory, type FrozenBase, type MaskedTokens, type Rng, type TextTokenizer } from '../model/index.js';
import { encodeMasked, isUpdateEncoding } from '../proto/update-codec.js';
import { buildUpdate, devicePrivacyRngs, sealUpdate, updateLayout, type BuiltUpdate, type UpdateInput } from './build-update.js';
import { trainingFromWire } from '../proto/config-codec.js';
import type { DeviceTraining } from '../model/device-training.js';
import { LocalDataError, localTrainingData, withReplay } from './local-data.js';
import type { SecAggRequest } from '../proto/generated/fedtune/v1/SecAggRequest.js';
import type { UploadUpdateResponse__Output } from '../proto/generated/fedtune/v1/UploadUpdateResponse.js';
import { secAggRound } from './secagg-client.js';
import type { CheckInResponse__Output } from '../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../proto/generated/fedtune/v1/Coordinator.js';
import type { EnrollResponse__Output } from '../proto/generated/fedtune/v1/EnrollResponse.js';
import type { ProgramConfig__Output } from '../proto/generated/fedtune/v1/ProgramConfig.js';
import type { RoundEvent__Output } from '../proto/generated/fedtune/v1/RoundEvent.js';
import type { RoundWork__Output } from '../proto/generated/fedtune/v1/RoundWork.js';
import { loadProtos } from '../proto/load.js';
import { baseContainer, bundledBaseDir, hasBundledBase, unpackBaseBundle } from './base-bundle.js';
import { downloadBlob } from './download-blob.js';
import { loadIdentity, saveEnrolment, type DeviceIdentity, type Enrolment } from './identity.js';
import { authFor, enrollRequestFor, sleep, unaryCall, withRetry, type RetryPolicy } from './rpc.js';
import type { EnrollRequest } from '../proto/generated/fedtune/v1/EnrollRequest.js';
import { uploadUpdate } from './upload-update.js';
import { tlsFailure } from './tls.js';
import { MAX_MESSAGE_BYTES } from '../proto/limits.js';
import { ReleaseError, type SignedRelease } from '../proto/release.js';
import type { SignedRelease__Output } from '../proto/generated/fedtune/v1/SignedRelease.js';
import { ReleaseKeeper, type ActiveAdapter, type KeptRelease } from './releases.js';

/** Options of a {@link Device}; every field but the first five has a default. */
export interface DeviceOptions {
  /**
   * Coordinator "host:port", or the addresses of several coordinator replicas: calls go to one
   * of them, and a call that fails with UNAVAILABLE is retried (with the retry policy's backoff)
   * on the next, round the list.
   */
  readonly address: string | readonly string[];
  readonly programId: string;
  /** Where keys, blobs and state live. */
  readonly dataDir: string;
  /** The program's enrolment token (needed the first time). */
  readonly enrolmentToken: string;
  /**
   * The device's local data, read once: plain text, or — when the program's `training.dataFormat`
   * is "chat" — chat JSONL (one `{"messages": [...]}` conversation per line; each string a whole
   * file's worth of lines).
   */
  readonly text: AsyncIterable<string> | Iterable<string>;
  /**
   * What `text` holds, when the owner knows ('text' or 'chat'): a program asking for the other
   * format is refused (LocalDataError) before any round. Default: whatever the program says.
   */
  readonly dataFormat?: DataFormat;
  readonly label?: string;
  /** Default insecure (updates are sealed end to end regardless); TLS: client/tls.ts deviceCredentials. */
  readonly credentials?: grpc.ChannelCredentials;
  /** Deadline of each unary call, ms. Default 30000. */
  readonly rpcDeadlineMs?: number;
  readonly retry?: RetryPolicy;
  /** Stop after taking part in this many rounds. Default: until the program completes. */
  readonly maxRounds?: number;
  /** Longest wait between check-ins, whatever the coordinator suggests, ms. Default 30000. */
  readonly maxWaitMs?: number;
  /** Ms kept free before a round's deadline for building and uploading the update. Default 2000. */
  readonly uploadMarginMs?: number;
  /**
   * Seed for batch (and replay) sampling — tests, the demo; crypto randomness otherwise. It never
   * drives privacy randomness: DP noise and stochastic rounding are crypto-strength regardless.
   */
  readonly seed?: number;
  /**
   * Tests only: the source of device-side DP noise and quantization rounding, to make an update
   * reproducible. Default (and what a real device must use): crypto randomness, whatever `seed` is.
   */
  readonly noiseRng?: Rng;
  /**
   * Train at most this LoRA rank (a device with less memory): the first `maxRank` components of
   * the program's adapter, its update zero-padded to the program's rank. Default: the program's rank.
   */
  readonly maxRank?: number;
  /**
   * The program's release key (hex or 32 bytes), given out of band: the key the coordinator
   * announces at enrolment must be this one. Default: the key announced at enrolment. Either way
   * it is pinned in the data dir, and a device never accepts another.
   */
  readonly releaseKey?: string | Uint8Array;
  /** Verified releases kept on disk for pinning and rollback. Default 3. */
  readonly keepReleases?: number;
  /**
   * What trains the adapter each round, called with LocalTrainer's arguments. Default: a
   * LocalTrainer per round. A simulation hosting many devices in one thread can batch their
   * training (sim/batching-trainer.ts); the update pipeline after training (clip, noise, seal)
   * stays each device's own either way.
   */
  readonly trainer?: DeviceTrainerFactory;
  /**
   * The device's keys and enrolments held by its host instead of `identity.json` in the data dir
   * (a simulated fleet derives thousands of identities from one seed file). Default: the data dir's.
   */
  readonly identity?: DeviceIdentityStore;
  /**
   * An already-open base (and its tokenizer) for the program's base blob `sha256`: used instead
   * of downloading and opening it, and never disposed by the device (one worker hosting many
   * simulated devices shares one). A program naming another base is served as usual.
   */
  readonly model?: SharedBase;
  /**
   * A gRPC channel to the coordinator shared with other devices (a few channels for a simulated
   * fleet); close() leaves it open. Default: a channel of the device's own.
   */
  readonly channel?: grpc.Channel;
  /**
   * Check in at most this many times, then stop (a simulated device sampled for one round checks
   * in once: work, or a ComeBack that ends the run). Default: no limit.
   */
  readonly maxCheckIns?: number;
}

/** Keys and enrolments a host keeps for a device (see {@link DeviceOptions.identity}). */
export interface DeviceIdentityStore {
  readonly identity: DeviceIdentity;
  /** Remember an enrolment (called once per program, after the coordinator answered). */
  saveEnrolment(programId: string, enrolment: Enrolment): void;
}

/** An open base shared by devices (see {@link DeviceOptions.model}). */
export interface SharedBase {
  /** SHA-256 of the base blob as the program announces it (ProgramConfig.base.sha256). */
  readonly sha256: string;
  readonly base: FrozenBase;
  readonly tokenizer: TextTokenizer;
  /** Where the base's chat template is looked for (chat programs): the base or tokenizer file. */
  readonly chatSource?: string;
}

/** What a device reports as it works. */
export type DeviceEvent =
  | { readonly kind: 'enrolled'; readonly deviceId: string }
  | { readonly kind: 'downloaded'; readonly what: 'base' | 'tokenizer' | 'adapter'; readonly bytes: number; readonly resumedFrom: number }
  | { readonly kind: 'waiting'; readonly ms: number; readonly reason: string }
  | { readonly kind: 'replay'; readonly tokens: number; readonly seconds: number }
  | { readonly kind: 'secagg'; readonly roundId: string; readonly stage: string }
  | { readonly kind: 'training'; readonly roundId: string; readonly step: number; readonly totalSteps: number; readonly loss: number }
  | {
      readonly kind: 'uploaded';
      readonly roundId: string;
      readonly bytes: number;
      readonly numExamples: number;
      /** L2 norm of the update before clipping and noise. */
      readonly updateNorm: number;
      readonly clipped: boolean;
      readonly trainSeconds: number;
    }
  | { readonly kind: 'rejected'; readonly roundId: string; readonly code: number; readonly details: string }
  | { readonly kind: 'retry'; readonly attempt: number; readonly delayMs: number; readonly details: string }
  | { readonly kind: 'release'; readonly sequence: number; readonly version: number; readonly releaseKind: 'version' | 'rollback' }
  | { readonly kind: 'release-refused'; readonly roundId: string; readonly version: number; readonly reason: string }
  | { readonly kind: 'done'; readonly rounds: number; readonly reason: string };

/** What a run did. */
export interface DeviceSummary {
  readonly deviceId: string;
  readonly roundsJoined: number;
  readonly updatesAccepted: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly reason: string;
}

const M = 'fedtune.v1.Coordinator';

/** A device taking part in one program. */
export class Device {
  private readonly events = new Subject<DeviceEvent>();
  /** Progress: enrolment, downloads, training steps, uploads, waits, the end. */
  readonly progress$: Observable<DeviceEvent> = this.events.asObservable();
  private readonly o: DeviceOptions;
  private readonly identity: DeviceIdentity;
  /** The coordinator addresses (one, or replicas'), and the one calls go to now. */
  private readonly addresses: readonly string[];
  private current = 0;
  /** A client per address, made when first used. */
  private readonly clients: (CoordinatorClient | undefined)[];
  private deviceId = '';
  private programKey = new Uint8Array(0);
  private model?: {
    sha256: string;
    base: FrozenBase;
    tokenizer: TextTokenizer;
    /** Where the base's chat template is looked for (the base file, or the tokenizer file that replaces its vocabulary). */
    chatSource: string;
    /** The local data as tokens, per data format. */
    data: Map<DataFormat, Int32Array | MaskedTokens>;
    mixed?: { key: string; data: Int32Array | MaskedTokens };
    /** Lent by the host (options.model): never disposed here. */
    shared?: boolean;
  };
  private parts?: string[];
  private bytesDown = 0;
  private bytesUp = 0;
  /** The verified releases in the data dir and the pinned release key. */
  private readonly releases: ReleaseKeeper;

  constructor(options: DeviceOptions) {
    const addresses = typeof options?.address === 'string' ? [options.address] : Array.isArray(options?.address) ? [...(options.address as readonly unknown[])] : [];
    if (addresses.length === 0 || addresses.some((a) => typeof a !== 'string' || a === '')) throw new TypeError('Device: options.address must be a non-empty string, or a non-empty list of them (coordinator replicas)');
    for (const k of ['programId', 'dataDir', 'enrolmentToken'] as const) {
      if (typeof options?.[k] !== 'string' || options[k] === '') throw new TypeError(`Device: options.${k} must be a non-empty string`);
    }
    if (!options.text || (typeof (options.text as AsyncIterable<string>)[Symbol.asyncIterator] !== 'function' && typeof (options.text as Iterable<string>)[Symbol.iterator] !== 'function')) {
      throw new TypeError('Device: options.text must be an iterable or async iterable of strings');
    }
    if (options.maxRounds !== undefined && !(Number.isInteger(options.maxRounds) && options.maxRounds > 0)) throw new RangeError(`Device: options.maxRounds must be a positive integer, got ${options.maxRounds}`);
    if (options.maxRank !== undefined && !(Number.isInteger(options.maxRank) && options.maxRank > 0)) throw new RangeError(`Device: options.maxRank must be a positive integer, got ${options.maxRank}`);
    if (options.trainer !== undefined && typeof options.trainer !== 'function') throw new TypeError('Device: options.trainer must be a function (base, adapter, data, options) => trainer');
    if (options.dataFormat !== undefined && options.dataFormat !== 'text' && options.dataFormat !== 'chat') throw new RangeError(`Device: options.dataFormat must be "text" or "chat", got ${JSON.stringify(options.dataFormat)}`);
    if (options.maxCheckIns !== undefined && !(Number.isInteger(options.maxCheckIns) && options.maxCheckIns > 0)) throw new RangeError(`Device: options.maxCheckIns must be a positive integer, got ${options.maxCheckIns}`);
    if (options.model !== undefined && (typeof options.model.sha256 !== 'string' || !options.model.base || !options.model.tokenizer)) throw new TypeError('Device: options.model must hold sha256, base and tokenizer');
    this.o = options;
    this.identity = options.identity?.identity ?? loadIdentity(options.dataDir);
    this.releases = new ReleaseKeeper(options.dataDir, options.programId, options.keepReleases ?? 3);
    if (options.releaseKey !== undefined) {
      const k = typeof options.releaseKey === 'string' ? Uint8Array.from(Buffer.from(/^[0-9a-f]{64}$/.test(options.releaseKey) ? options.releaseKey : '', 'hex')) : options.releaseKey;
      this.releases.pinKey(k, 'the configured release key (options.releaseKey)');
    }
    mkdirSync(join(options.dataDir, 'blobs'), { recursive: true });
    this.addresses = addresses as string[];
    this.clients = this.addresses.map(() => undefined);
  }

  /** The client of the address calls go to now (made when first used). */
  private get client(): CoordinatorClient {
    let c = this.clients[this.current];
    if (!c) {
      const { fedtune } = loadProtos();
      c = new fedtune.fedtune.v1.Coordinator(this.addresses[this.current], this.o.credentials ?? grpc.credentials.createInsecure(), {
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        ...(this.o.channel ? { channelOverride: this.o.channel } : {}),
      });
      this.clients[this.current] = c;
    }
    return c;
  }

  /** The address calls go to now. */
  get address(): string {
    return this.addresses[this.current];
  }

  /** The addresses as one string (what an enrolment records). */
  private get addressList(): string {
    return this.addresses.join(',');
  }

  private retry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const onRetry = (attempt: number, delayMs: number, e: grpc.ServiceError): void => {
      // this replica is unreachable or going away: the next attempt goes to the next address
      const from = this.address;
      if (e.code === grpc.status.UNAVAILABLE && this.addresses.length > 1) this.current = (this.current + 1) % this.addresses.length;
      this.events.next({ kind: 'retry', attempt, delayMs, details: from === this.address ? e.details : `${e.details} (${from}; next: ${this.address})` });
    };
    return withRetry(call, { ...this.o.retry, onRetry }, signal).catch((e: unknown) => {
      throw tlsFailure(e, this.address) ?? e; // a failed TLS handshake, said in a sentence
    });
  }

  private get deadline(): number {
    return this.o.rpcDeadlineMs ?? 30_000;
  }

  /** Enrol (or reuse the enrolment in the data dir); returns the device id. */
  async enroll(signal?: AbortSignal): Promise<string> {
    const known = this.identity.enrolments[this.o.programId];
    // an enrolment made through any of these coordinators (replicas share one database) holds
    if (known && (known.address === this.addressList || this.addresses.includes(known.address) || known.address.split(',').some((a) => this.addresses.includes(a)))) {
      this.deviceId = known.deviceId;
      this.programKey = Uint8Array.from(Buffer.from(known.programBoxPublicKey, 'hex'));
      return this.deviceId;
    }
    // every attempt proves possession of the signing key afresh (a proof is used once)
    const req = (): EnrollRequest => enrollRequestFor(this.o.programId, this.o.enrolmentToken, this.identity.sign, this.identity.box.publicKey, this.o.label ?? '');
    const res = await this.retry(() => unaryCall<EnrollResponse__Output>((o, cb) => this.client.Enroll(req(), o, cb), this.deadline), signal);
    // the release key: the configured one, or pinned now for good
    this.releases.pinKey(Uint8Array.from(res.releasePublicKey ?? []), 'the coordinator at enrolment');
    this.deviceId = res.deviceId;
    this.programKey = Uint8Array.from(res.programBoxPublicKey);
    const enrolment = { deviceId: res.deviceId, programBoxPublicKey: Buffer.from(res.programBoxPublicKey).toString('hex'), address: this.addressList };
    if (this.o.identity) this.o.identity.saveEnrolment(this.o.programId, enrolment);
    else saveEnrolment(this.o.dataDir, this.o.programId, enrolment);
    this.events.next({ kind: 'enrolled', deviceId: res.deviceId });
    return res.deviceId;
  }

  private signed<T extends Record<string, unknown>>(method: string, req: T): T & { auth: ReturnType<typeof authFor> } {
    return { ...req, auth: authFor(`${M}/${method}`, req, this.deviceId, this.identity.sign, { programId: this.o.programId }) };
  }

  /** The program's configuration. */
  async program(signal?: AbortSignal): Promise<ProgramConfig__Output> {
    const p = await this.retry(() => unaryCall<ProgramConfig__Output>((o, cb) => this.client.GetProgram(this.signed('GetProgram', { programId: this.o.programId }), o, cb), this.deadline), signal);
    // a device enrolled before it pinned a key (or an older coordinator) pins it here; a changed key is refused
    this.releases.pinKey(Uint8Array.from(p.releasePublicKey ?? []), "the coordinator's program config");
    return p;
  }

  /**
   * Verify a release and its adapter (downloaded if missing) and keep it. Returns the verified
   * adapter bytes; ReleaseError (the device keeps what it had) otherwise.
   */
  private async acceptRelease(p: ProgramConfig__Output, wire: SignedRelease__Output | null | undefined, sha256: string, signal?: AbortSignal): Promise<{ bytes: Uint8Array; version: number }> {
    if (!wire) throw new ReleaseError('the adapter comes without a release manifest');
    const release: SignedRelease = { manifest: Uint8Array.from(wire.manifest), signature: Uint8Array.from(wire.signature) };
    const m = await this.ensureModel(p, signal);
    const manifest = this.releases.check(release, m.base.sha256); // before any download: a replay costs nothing
    const known = this.releases.list().some((k) => k.sequence === manifest.sequence);
    const bytes = readFileSync(await this.blob(sha256, 'adapter', signal));
    this.releases.accept(release, bytes, m.base.sha256);
    if (!known) this.events.next({ kind: 'release', sequence: manifest.sequence, version: manifest.version, releaseKind: manifest.kind });
    return { bytes, version: manifest.version };
  }

  /** Pin the adapter in use to a kept, verified version (offline); RangeError if it is not kept. */
  pin(version: number): void {
    this.releases.pin(version);
  }

  /** Follow the program's newest verified release again. */
  unpin(): void {
    this.releases.unpin();
  }

  /** Offline rollback: pin the newest kept version older than the one in use; returns it. */
  rollback(): number {
    return this.releases.rollback();
  }

  /** The adapter to use for inference: the pinned or current release, re-verified from disk (undefined before the first). */
  activeAdapter(): ActiveAdapter | undefined {
    return this.releases.active();
  }

  /** The verified releases kept on disk, oldest first. */
  keptReleases(): readonly KeptRelease[] {
    return this.releases.list();
  }

  /** A blob in the local cache, downloading (resumably) what is missing. */
  private async blob(sha256: string, what: 'base' | 'tokenizer' | 'adapter', signal?: AbortSignal): Promise<string> {
    const dest = join(this.o.dataDir, 'blobs', sha256);
    if (existsSync(dest)) return dest;
    const r = await this.retry(() => downloadBlob(this.client, sha256, dest, { auth: (req) => this.signed('DownloadBlob', req).auth }), signal);
    this.bytesDown += r.bytes - r.resumedFrom;
    this.events.next({ kind: 'downloaded', what, bytes: r.bytes, resumedFrom: r.resumedFrom });
    return dest;
  }

  private async ensureModel(p: ProgramConfig__Output, signal?: AbortSignal): Promise<NonNullable<Device['model']>> {
    if (!p.base) throw new Error(`program ${p.programId} names no base model`);
    if (this.model?.sha256 === p.base.sha256) return this.model;
    const shared = this.o.model;
    if (shared && shared.sha256 === p.base.sha256) {
      this.model = { sha256: shared.sha256, base: shared.base, tokenizer: shared.tokenizer, chatSource: shared.chatSource ?? '', data: new Map(), shared: true };
      return this.model;
    }
    // a Hugging Face directory comes as a ustar bundle: unpacked strictly, its identity checked (client/base-bundle)
    const bundled = baseContainer(p.base) !== '';
    const basePath = bundled
      ? hasBundledBase(this.o.dataDir, p.base.sha256) ? bundledBaseDir(this.o.dataDir, p.base.sha256) : unpackBaseBundle(await this.blob(p.base.sha256, 'base', signal), this.o.dataDir, p.base)
      : await this.blob(p.base.sha256, 'base', signal);
    const tokenizerPath = p.tokenizer?.sha256 ? await this.blob(p.tokenizer.sha256, 'tokenizer', signal) : undefined;
    const quant = trainingFromWire(p.training).quant;
    await initBackend(); // the configured backend (FEDTUNE_BACKEND), once per process
    if (!this.model?.shared) this.model?.base.dispose();
    this.model = undefined;
    const { base, tokenizer } = openBase(basePath, quant, { tokenizerPath, seed: 1 });
    if (bundled && base.sha256 !== p.base.contentSha256) {
      base.dispose();
      throw new Error(`the base unpacked in ${basePath} has identity ${base.sha256}, not the ${p.base.contentSha256} the program announces; delete that folder to download it again`);
    }
    this.model = { sha256: p.base.sha256, base, tokenizer, chatSource: tokenizerPath ?? basePath, data: new Map() };
    return this.model;
  }

  /** The local data as strings, read once. */
  private async localParts(): Promise<string[]> {
    if (this.parts) return this.parts;
    const parts: string[] = [];
    const src = this.o.text;
    if (typeof (src as AsyncIterable<string>)[Symbol.asyncIterator] === 'function') for await (const s of src as AsyncIterable<string>) parts.push(s);
    else for (const s of src as Iterable<string>) parts.push(s);
    this.parts = parts;
    return parts;
  }

  /** Refuses a program whose data format is not what the owner said the local data is. */
  private checkDataFormat(format: DataFormat): void {
    if (this.o.dataFormat === undefined || this.o.dataFormat === format) return;
    throw new LocalDataError(
      format === 'chat'
        ? `program ${this.o.programId} trains on chat conversations (training.dataFormat "chat"), but this device's local data is plain text`
        : `program ${this.o.programId} trains on plain text (training.dataFormat "text"), but this device's local data is chat JSONL`,
      format,
    );
  }

  /**
   * The local data as the program's data format wants it (a loss mask for chat), mixed with text
   * sampled from the base when the program asks for replay (sampled once).
   */
  private async trainingData(m: NonNullable<Device['model']>, training: DeviceTraining): Promise<Int32Array | MaskedTokens> {
    const format = training.dataFormat ?? 'text';
    this.checkDataFormat(format);
    let local = m.data.get(format);
    if (!local) {
      const chatStyle: ChatStyle | undefined = format === 'chat' ? baseChatStyle(m.chatSource, m.tokenizer) : undefined;
      local = localTrainingData(await this.localParts(), format, { tokenizer: m.tokenizer, chatStyle });
      m.data.set(format, local);
    }
    const fraction = training.replayFraction ?? 0;
    if (!(fraction > 0)) return local;
    const key = `${format}|${fraction}|${training.replayTokens ?? 8192}`;
    if (m.mixed?.key !== key) {
      const seed = this.o.seed ?? Number.parseInt(Buffer.from(nacl.randomBytes(4)).toString('hex'), 16);
      const t0 = performance.now();
      const pool = sampleReplayPool(m.base, { tokenizer: m.tokenizer, tokens: training.replayTokens ?? 8192, seed });
      this.events.next({ kind: 'replay', tokens: pool.length, seconds: (performance.now() - t0) / 1000 });
      const tokens = local instanceof Int32Array ? local : local.tokens;
      m.mixed = { key, data: withReplay(local, mixReplay(tokens, pool, fraction, seed % pool.length)) };
    }
    return m.mixed.data;
  }

  /**
   * Take part until the program completes, `maxRounds` rounds were joined, or `signal` aborts.
   * A rejected update is reported and the device goes on with the next round.
   */
  async run(signal?: AbortSignal): Promise<DeviceSummary> {
    let joined = 0;
    let accepted = 0;
    let checkIns = 0;
    let reason = 'aborted';
    try {
      await this.enroll(signal);
      let program = await this.program(signal);
      const programTraining = trainingFromWire(program.training);
      this.checkDataFormat(programTraining.dataFormat ?? 'text');
      // chat data is rendered with the base's chat format before the first check-in, so a device
      // that cannot train it (no chat format, malformed JSONL) never takes a place in a round
      if (programTraining.dataFormat === 'chat') await this.trainingData(await this.ensureModel(program, signal), { ...programTraining, replayFraction: 0 });
      if (program.adapter) {
        try {
          await this.acceptRelease(program, program.release, program.adapter.sha256, signal);
        } catch (e) {
          if (!(e instanceof ReleaseError)) throw e;
          this.events.next({ kind: 'release-refused', roundId: '', version: Number(program.adapterVersion), reason: e.message });
        }
      }
      while (!signal?.aborted) {
        if (this.o.maxRounds !== undefined && joined >= this.o.maxRounds) {
          reason = `took part in ${joined} round(s)`;
          break;
        }
        if (this.o.maxCheckIns !== undefined && checkIns >= this.o.maxCheckIns) {
          reason = `checked in ${checkIns} time(s)`;
          break;
        }
        checkIns++;
        const version = Number(program.adapterVersion);
        const res = await this.retry(() => unaryCall<CheckInResponse__Output>((o, cb) => this.client.CheckIn(this.signed('CheckIn', { programId: this.o.programId, adapterVersion: version }), o, cb), this.deadline), signal);
        if (res.later) {
          if (res.later.programComplete) {
            reason = res.later.reason;
            break;
          }
          if (this.o.maxCheckIns !== undefined && checkIns >= this.o.maxCheckIns) {
            reason = `not selected: ${res.later.reason}`;
            break;
          }
          const ms = Math.min(this.o.maxWaitMs ?? 30_000, Math.max(50, Number(res.later.retryAfterMs)));
          this.events.next({ kind: 'waiting', ms, reason: res.later.reason });
          await sleep(ms, signal);
          continue;
        }
        const work = res.work as RoundWork__Output;
        if (Number(work.adapterVersion) !== Number(program.adapterVersion)) program = await this.program(signal);
        let verified: Uint8Array;
        try {
          if (!work.adapter) throw new ReleaseError(`round ${work.roundId} names no adapter`);
          verified = (await this.acceptRelease(program, work.release, work.adapter.sha256, signal)).bytes;
        } catch (e) {
          if (!(e instanceof ReleaseError)) throw e;
          // never train from an adapter whose release does not verify: keep the last verified one, try again later
          this.events.next({ kind: 'release-refused', roundId: work.roundId, version: Number(work.adapterVersion), reason: e.message });
          await sleep(Math.min(this.o.maxWaitMs ?? 30_000, 2000), signal);
          continue;
        }
        joined++;
        try {
          if (await this.doRound(program, work, verified, signal)) accepted++;
        } catch (e) {
          const se = e as grpc.ServiceError;
          if (typeof se.code !== 'number' || se.code === grpc.status.UNAVAILABLE) throw e;
          this.events.next({ kind: 'rejected', roundId: work.roundId, code: se.code, details: se.details });
        }
      }
    } finally {
      this.events.next({ kind: 'done', rounds: joined, reason });
      this.events.complete();
    }
    return { deviceId: this.deviceId, roundsJoined: joined, updatesAccepted: accepted, bytesUp: this.bytesUp, bytesDown: this.bytesDown, reason };
  }

  /** Train and upload one round's update; false when `signal` aborted before the upload (nothing is sent). */
  private async doRound(p: ProgramConfig__Output, work: RoundWork__Output, verifiedAdapter: Uint8Array, signal?: AbortSignal): Promise<boolean> {
    const m = await this.ensureModel(p, signal);
    // the bytes whose release verified, not the file again
    const received = decodeAdapter(verifiedAdapter, m.base, `adapter version ${work.adapterVersion}`);
    const programLora = received.config;
    // a device with less memory trains the first maxRank components (alpha scaled so α/r is unchanged)
    const lowRank = this.o.maxRank !== undefined && this.o.maxRank < programLora.rank ? this.o.maxRank : undefined;
    let adapter = received;
    if (lowRank !== undefined) {
      try {
        adapter = LoraAdapter.fromTensors(m.base.config, m.base.sha256, { ...programLora, rank: lowRank, alpha: (programLora.alpha * lowRank) / programLora.rank }, truncateRankTensors(received.toTensors(), lowRank));
      } finally {
        received.dispose();
      }
    }
    try {
      const global = adapter.toFlat();
      const training = trainingFromWire(work.training);
      const data = await this.trainingData(m, training);
      const budget = Number(work.deadlineUnixMs) - Date.now() - (this.o.uploadMarginMs ?? 2000);
      if (budget <= 0) throw Object.assign(new Error('no time left'), { code: grpc.status.DEADLINE_EXCEEDED, details: `round ${work.roundId} left no time to train` });
      const timeBudgetMs = Math.min(training.timeBudgetMs ?? Infinity, budget);
      const trainer = (this.o.trainer ?? localTrainerFactory)(m.base, adapter, data, { ...training, startId: m.tokenizer.startId, timeBudgetMs, seed: this.o.seed === undefined ? undefined : this.o.seed + Number(work.adapterVersion) * 7919 });
      const sub = trainer.progress$.subscribe((s) => this.events.next({ kind: 'training', roundId: work.roundId, step: s.step, totalSteps: s.totalSteps, loss: s.loss }));
      const result = await trainer.run();
      sub.unsubscribe();
      // aborted while training (the owner stopped it, the device went offline): nothing is sent
      if (signal?.aborted) return false;
      const local = adapter.toFlat();
      const encoding = work.encoding || 'f32';
      if (!isUpdateEncoding(encoding)) throw new Error(`round ${work.roundId} asks for update encoding "${encoding}", which this device does not know`);
      const update = this.buildRoundUpdate({
        local,
        global,
        layout: updateLayout(m.base.config, programLora, lowRank),
        work: { clipNorm: work.clipNorm, deviceNoiseStd: work.deviceNoiseStd, encoding },
        trained: { steps: result.steps, batchSize: training.batchSize ?? 8 },
        rngs: devicePrivacyRngs(this.o.noiseRng), // crypto-strength whatever the seed says
      });
      const { numExamples } = update;
      const meta = { programId: this.o.programId, roundId: work.roundId, numExamples, encoding, unclipped: !update.clipped };
      const send = (plain: Uint8Array) => this.retry(() => uploadUpdate(this.client, this.deviceId, this.identity.sign, meta, sealUpdate(plain, this.programKey, this.identity.box)), signal);
      let receipt: UploadUpdateResponse__Output | undefined;
      if (update.encoding === 'masked') {
        // secure aggregation: the coordinator only ever sees this update masked
        const ctx = {
          client: this.client,
          programId: this.o.programId,
          roundId: work.roundId,
          sign: (req: SecAggRequest) => this.signed('SecAgg', req as Record<string, unknown>) as SecAggRequest,
          signSecretKey: this.identity.sign.secretKey,
          rng: cryptoRng(), // SecAgg keys and shares are always crypto-strength, even in seeded simulations
          deadlineUnixMs: Number(work.deadlineUnixMs),
          onStage: (stage: string) => this.events.next({ kind: 'secagg', roundId: work.roundId, stage }),
          rpcDeadlineMs: this.deadline,
          signal,
        };
        await secAggRound(ctx, update.values, async (y) => {
          receipt = await send(encodeMasked(y));
        });
      } else {
        receipt = await send(update.plaintext);
      }
      if (!receipt) throw new Error('secure aggregation ended without an upload');
      this.bytesUp += Number(receipt.bytesReceived);
      this.events.next({ kind: 'uploaded', roundId: work.roundId, bytes: Number(receipt.bytesReceived), numExamples, updateNorm: update.norm, clipped: update.clipped, trainSeconds: result.elapsedMs / 1000 });
      return true;
    } finally {
      adapter.dispose();
    }
  }

  /**
   * Turn a round's training into its update: the device-side pipeline (client/build-update),
   * nothing else on a real device. Protected so a simulation can model a misbehaving device
   * (sim/attacker-device.ts) by composing the pipeline's stages differently.
   */
  protected buildRoundUpdate(input: UpdateInput): BuiltUpdate {
    return buildUpdate(input);
  }

  /**
   * The program's round events over WatchRounds: completed and failed rounds after `afterRound`
   * first, then live ones; completes when the program does. Unsubscribing cancels the stream.
   */
  watchRounds(afterRound = 0, deadlineMs = 24 * 3_600_000): Observable<RoundEvent__Output> {
    return new Observable<RoundEvent__Output>((sub) => {
      let call: grpc.ClientReadableStream<RoundEvent__Output> | undefined;
      let closed = false;
      this.enroll()
        .then(() => {
          if (closed) return;
          call = this.client.WatchRounds(this.signed('WatchRounds', { programId: this.o.programId, afterRound }), { deadline: Date.now() + deadlineMs });
          call.on('data', (e: RoundEvent__Output) => sub.next(e));
          call.on('error', (e: grpc.ServiceError) => {
            if (e.code !== grpc.status.CANCELLED || !closed) sub.error(e);
          });
          call.on('end', () => sub.complete());
        })
        .catch((e: unknown) => sub.error(e));
      return () => {
        closed = true;
        call?.cancel();
      };
    });
  }

  /** Close the connection and free the base. */
  close(): void {
    if (!this.o.channel) for (const c of this.clients) c?.close();
    if (!this.model?.shared) this.model?.base.dispose();
    this.model = undefined;
  }
}
