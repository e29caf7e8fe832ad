/**
 * The fedtune.v1.Coordinator gRPC handlers over a {@link Coordinator}. Every handler answers
 * exactly once — a response, or one status from `toStatus()` with a sentence. Every request is
 * first held to its wire-type check (proto/raw-request.ts); signed requests are authenticated over
 * the bytes they arrived as, as proto/signing.ts defines.
 */
import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Subscription } from 'rxjs';
import type { Auth__Output } from '../proto/generated/fedtune/v1/Auth.js';
import type { CoordinatorHandlers } from '../proto/generated/fedtune/v1/Coordinator.js';
import type { RoundEvent } from '../proto/generated/fedtune/v1/RoundEvent.js';
import type { UpdateHeader__Output } from '../proto/generated/fedtune/v1/UpdateHeader.js';
import { bytesFromWire } from '../proto/wire-error.js';
import { loraConfigToWire, trainingToWire } from '../proto/config-codec.js';
import { signingPayloadFromWire } from '../proto/signing.js';
import { rawRequestBytes, requireWellFormed } from '../proto/raw-request.js';
import { loadProtos } from '../proto/load.js';
import type { RequestSignature } from '../privacy/sign.js';
import { downloadBlobHandler } from './blob-service.js';
import { secAggStage } from './secagg-service.js';
import { MAX_CHUNK_BYTES } from './blob-store.js';
import type { Coordinator, ProgramState } from './coordinator.js';
import { CoordinatorError, refuse, toStatus } from './errors.js';
import { peerKey } from './enrol-throttle.js';
import { StreamQuota } from './stream-quota.js';
import type { RoundEventRecord } from './program-runner.js';
import type { StoredDevice } from './storage/index.js';

const SERVICE = 'fedtune.v1.Coordinator';

function signatureOf(auth: Auth__Output | null | undefined): RequestSignature | null {
  if (!auth) return null;
  return { deviceId: auth.deviceId, nonce: auth.nonce, timestamp: auth.timestampMs, signature: bytesFromWire(auth.signature) };
}

/** The full method name a signature binds. */
const fullMethod = (method: string): string => `/${SERVICE}/${method}`;

/**
 * Authenticate a request (for UploadUpdate: its header chunk) by the bytes it arrived as, for
 * `method` and the program it names (DownloadBlob names none: the device's own).
 */
function authenticate(c: Coordinator, method: string, request: object, auth: Auth__Output | null | undefined, programId?: string): Promise<StoredDevice> {
  requireWellFormed(request);
  const raw = rawRequestBytes(request);
  if (!raw) throw new Error(`${method}: the request's wire bytes were not kept (proto/raw-request.ts)`);
  return c.authenticate(signatureOf(auth), { method: fullMethod(method), programId }, signingPayloadFromWire(fullMethod(method), raw));
}

/** The size of a request message on the wire (protobuf), for traffic accounting: the bytes it arrived as. */
function requestBytes(method: string, request: object): number {
  const raw = rawRequestBytes(request);
  if (raw) return raw.length;
  const svc = loadProtos().definition[SERVICE] as unknown as Record<string, { requestSerialize(v: unknown): Buffer }>;
  return svc[method].requestSerialize(request).length;
}

/** Round event → wire. */
export function roundEventToWire(e: RoundEventRecord): RoundEvent {
  return { ...e, state: `ROUND_STATE_${e.state}` };
}

function blobRef(sha256: string, size: number, format: string, container = '', contentSha256 = ''): { sha256: string; sizeBytes: number; format: string; container: string; contentSha256: string } {
  return { sha256, sizeBytes: size, format, container, contentSha256 };
}

/** The newest signed release of a program's version `version`, for the wire (null if it has none). */
function releaseOf(p: ProgramState, version: number): { manifest: Buffer; signature: Buffer } | null {
  const rel = p.releases.all().filter((r) => r.version === version && r.signature.length > 0).pop();
  return rel ? { manifest: Buffer.from(rel.manifest), signature: Buffer.from(rel.signature) } : null;
}

/** Unary handler: check the request's wire types, run `fn`, answer once with its value or its status (whether it throws or rejects). */
function unary<Req extends object, Res>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let res: Res | Promise<Res>;
    try {
      requireWellFormed(call.request);
      res = fn(call.request, call);
    } catch (e) {
      return callback(toStatus(e));
    }
    if (!(res instanceof Promise)) return callback(null, res);
    res.then(
      (v) => callback(null, v),
      (e: unknown) => callback(toStatus(e)),
    );
  };
}

/**
 * Long-lived calls one device may hold open at once (each holds memory: a chunk in flight, a
 * queue of round events, an update's buffer). Beyond them a new download or watch is refused
 * (RESOURCE_EXHAUSTED, retried with backoff); a new upload ends the device's older one.
 */
export const DEVICE_STREAM_LIMITS = Object.freeze({ downloads: 4, watches: 4, uploads: 1 });

/** The handlers of the Coordinator service. */
export function coordinatorHandlers(c: Coordinator): CoordinatorHandlers {
  const downloads = new StreamQuota(DEVICE_STREAM_LIMITS.downloads);
  const watches = new StreamQuota(DEVICE_STREAM_LIMITS.watches);
  const uploads = new StreamQuota(DEVICE_STREAM_LIMITS.uploads);
  return {
    Enroll: unary(async (req, call) => {
      const proof = req.proof ? { nonce: req.proof.nonce, timestamp: req.proof.timestampMs, signature: bytesFromWire(req.proof.signature) } : null;
      const r = await c.enroll(
        { programId: req.programId, token: req.enrolmentToken, signPublicKey: bytesFromWire(req.signPublicKey), boxPublicKey: bytesFromWire(req.boxPublicKey), label: req.label, proof },
        peerKey(call.getPeer()),
      );
      return { deviceId: r.deviceId, programBoxPublicKey: Buffer.from(r.programBoxPublicKey), releasePublicKey: Buffer.from(r.releasePublicKey) };
    }),

    GetProgram: unary(async (req) => {
      const device = await authenticate(c, 'GetProgram', req, req.auth, req.programId);
      const p = c.programOf(device, req.programId);
      await c.refreshReleases(p);
      // the adapter devices get is the one the newest signed release names
      const rel = p.releases.published();
      const v = (rel && (rel.version === p.runner.latestVersion.version ? p.runner.latestVersion : await c.store.version(p.spec.id, rel.version))) || p.runner.latestVersion;
      return {
        release: rel ? { manifest: Buffer.from(rel.manifest), signature: Buffer.from(rel.signature) } : null,
        releasePublicKey: Buffer.from(p.releases.key.publicKey),
        programId: p.spec.id,
        base: blobRef(p.base.blob.sha256, p.base.blob.size, p.base.format, p.base.blob.container, p.base.blob.container ? p.base.sha256 : ''),
        tokenizer: p.tokenizer ? blobRef(p.tokenizer.sha256, p.tokenizer.size, 'llama2c-tokenizer') : null,
        lora: loraConfigToWire(p.spec.lora),
        training: trainingToWire(p.spec.training),
        dp: { clipNorm: p.runner.clipNorm(), noiseMultiplier: p.spec.dp.noiseMultiplier, mode: p.spec.dp.mode },
        programBoxPublicKey: Buffer.from(p.keys.publicKey),
        adapterVersion: v.version,
        adapter: blobRef(v.sha256, v.sizeBytes, 'fedtune-lora'),
        roundsTotal: p.spec.rounds,
        roundsCompleted: p.runner.completedRounds,
      };
    }),

    DownloadBlob: downloadBlobHandler(
      c.blobBackend,
      async (req) => {
        try {
          await c.authorizeBlob(await authenticate(c, 'DownloadBlob', req, req.auth), req.sha256);
          return null;
        } catch (e) {
          return toStatus(e);
        }
      },
      // admitted only once authenticated: auth.device_id is the device's
      (req) => downloads.tryAdmit(req.auth?.deviceId ?? '') ?? toStatus(new CoordinatorError('resource-exhausted', `this device already has ${DEVICE_STREAM_LIMITS.downloads} downloads open; retry when one has ended`)),
    ),

    CheckIn: unary(async (req) => {
      const device = await authenticate(c, 'CheckIn', req, req.auth, req.programId);
      const p = c.programOf(device, req.programId);
      // the version the device holds: 0 = none yet (it starts from version 0, the initial adapter)
      const latest = p.runner.newestVersion;
      if (!Number.isSafeInteger(req.adapterVersion) || req.adapterVersion < 0) refuse('invalid-argument', `adapter_version must be a version number ≥ 0, got ${req.adapterVersion}`);
      // (a replica knows the versions of its start, and those it made; replicas share the database)
      if (req.adapterVersion > latest && !(await c.store.version(p.spec.id, req.adapterVersion))) refuse('invalid-argument', `adapter_version ${req.adapterVersion} is newer than the latest version ${latest} of program "${p.spec.id}"`);
      const w = await c.checkIn(p, device.id);
      if ('retryAfterMs' in w) return { later: { retryAfterMs: w.retryAfterMs, reason: w.reason, programComplete: w.programComplete } };
      // a follower reads the release of a version its driver published since (shared rounds)
      if (!releaseOf(p, w.adapterVersion)) await c.refreshReleases(p, true);
      return {
        work: {
          roundId: w.roundId,
          adapterVersion: w.adapterVersion,
          adapter: blobRef(w.adapterSha256, w.adapterBytes, 'fedtune-lora'),
          training: trainingToWire(p.spec.training),
          clipNorm: w.clipNorm,
          deviceNoiseStd: w.deviceNoiseStd,
          deadlineUnixMs: w.deadlineUnixMs,
          encoding: p.encoding,
          release: releaseOf(p, w.adapterVersion),
        },
      };
    }),

    UploadUpdate: (call, callback) => {
      let answered = false;
      let header: UpdateHeader__Output | undefined;
      let device: StoredDevice | undefined;
      let program: ProgramState | undefined;
      let buf: Uint8Array | undefined;
      let got = 0;
      // once the header is accepted: the device's upload slot, and the round's deadline
      let release = (): void => {};
      let deadline: NodeJS.Timeout | undefined;
      const answer = (err: unknown, bytes = 0, roundId = ''): void => {
        if (answered) return;
        answered = true;
        clearTimeout(deadline);
        release();
        buf = undefined;
        if (err) callback(toStatus(err));
        else callback(null, { roundId, bytesReceived: bytes });
      };
      // chunks are handled one after another, in order: authenticating the header awaits the database
      let queue: Promise<void> = Promise.resolve();
      const inOrder = (f: () => void | Promise<void>): void => {
        queue = queue.then(f).catch((e: unknown) => answer(e));
      };
      call.on('data', (chunk: { header?: UpdateHeader__Output | null; data?: Buffer | null; part?: string }) => inOrder(async () => {
        if (answered) return;
        try {
          requireWellFormed(chunk);
          if (chunk.part === 'header' && chunk.header) {
            if (header) refuse('invalid-argument', 'the update stream carries a second header');
            header = chunk.header;
            device = await authenticate(c, 'UploadUpdate', chunk, header.auth, header.programId);
            program = c.programOf(device, header.programId);
            const roundDeadline = await c.expectUpload(program, device.id, header.roundId);
            const expected = c.sealedBytes(program, header.encoding);
            if (header.payloadBytes !== expected) refuse('invalid-argument', `payload_bytes is ${header.payloadBytes}, but a sealed "${header.encoding}" update for this program is ${expected} bytes`);
            if (!/^[0-9a-f]{64}$/.test(header.payloadSha256)) refuse('invalid-argument', 'payload_sha256 must be a hex SHA-256');
            // one upload per device at a time (a newer one ends the older), none past its round's deadline:
            // open streams that never finish hold no buffers
            release = uploads.admit(device.id, () => answer(new CoordinatorError('resource-exhausted', 'this upload was ended: a newer upload from the same device replaced it')));
            const roundId = header.roundId;
            deadline = setTimeout(() => answer(new CoordinatorError('deadline-exceeded', `round ${roundId}'s deadline passed before the update arrived in full`)), Math.max(0, roundDeadline - Date.now()));
            buf = new Uint8Array(expected);
          } else if (chunk.part === 'data' && chunk.data) {
            if (!header || !buf) refuse('invalid-argument', 'the update stream must start with its header');
            const d = chunk.data;
            if (d.length > MAX_CHUNK_BYTES) refuse('resource-exhausted', `a data chunk of ${d.length} bytes exceeds the ${MAX_CHUNK_BYTES}-byte limit`);
            if (got + d.length > buf.length) refuse('resource-exhausted', `the stream sent more than the ${buf.length} bytes its header announced`);
            buf.set(d, got);
            got += d.length;
          } else {
            refuse('invalid-argument', 'an update chunk must hold a header or data');
          }
        } catch (e) {
          if (e instanceof CoordinatorError && device && header && program && e.kind !== 'unauthenticated' && e.kind !== 'unavailable') c.rejectUpload(program, device.id, header.roundId, e.message, e.kind);
          answer(e);
        }
      }));
      call.on('end', () => inOrder(async () => {
        if (answered) return;
        try {
          if (!header || !buf || !device || !program) refuse('invalid-argument', 'the update stream ended without a header');
          if (got !== buf.length) refuse('invalid-argument', `the stream ended after ${got} of the ${buf.length} bytes its header announced`);
          if (createHash('sha256').update(buf).digest('hex') !== header.payloadSha256) refuse('invalid-argument', 'the payload does not match payload_sha256');
          // shared rounds (PostgreSQL): the update is committed to the database before this resolves
          await c.acceptUpdate(device, program, header.roundId, header.encoding, header.numExamples, buf, header.unclipped);
          // an update that closed its round is acknowledged once the round's outcome is committed (as before the store was asynchronous)
          const roundId = header.roundId;
          const bytes = got;
          await program.runner.settled().catch(() => undefined);
          answer(null, bytes, roundId);
        } catch (e) {
          answer(e);
        }
      }));
      // 'cancelled' also comes after every answered upload: build no error (and its stack) for it then
      call.on('error', () => answered || answer(new CoordinatorError('unavailable', 'the upload stream broke')));
      call.on('cancelled', () => answered || answer(new CoordinatorError('unavailable', 'the device left the upload')));
    },

    SecAgg: unary(async (req) => {
      const device = await authenticate(c, 'SecAgg', req, req.auth, req.programId);
      const p = c.programOf(device, req.programId);
      await c.refuseUnserved(p); // a secure aggregation's stages all reach its driver
      return secAggStage(p, device, req, requestBytes('SecAgg', req));
    }),

    WatchRounds: (call) => {
      let sub: Subscription | undefined;
      let finished = false;
      const finish = (err?: unknown): void => {
        if (finished) return;
        finished = true;
        sub?.unsubscribe();
        if (err) call.emit('error', toStatus(err));
        else call.end();
      };
      void (async () => {
      try {
        const device = await authenticate(c, 'WatchRounds', call.request, call.request.auth, call.request.programId);
        if (finished || call.cancelled) return;
        const p = c.programOf(device, call.request.programId);
        const release = watches.tryAdmit(device.id);
        if (!release) refuse('resource-exhausted', `this device already has ${DEVICE_STREAM_LIMITS.watches} WatchRounds streams open; retry when one has ended`);
        const queue: RoundEvent[] = [];
        let waiting = false;
        let completed = false;
        const flush = (): void => {
          waiting = false;
          while (queue.length && !finished) {
            if (!call.write(queue.shift() as RoundEvent)) {
              waiting = true;
              call.once('drain', flush);
              return;
            }
          }
          if (completed && !finished) finish();
        };
        // 'cancelled' comes once the call is over: the client left, or the status went out after the last event
        call.on('cancelled', () => {
          finished = true;
          sub?.unsubscribe();
          release();
        });
        sub = p.runner.watch(call.request.afterRound).subscribe({
          next: (e) => {
            queue.push(roundEventToWire(e));
            if (!waiting) flush();
          },
          complete: () => {
            completed = true;
            if (!waiting) flush();
          },
        });
      } catch (e) {
        finish(e);
      }
      })();
    },
  };
}
