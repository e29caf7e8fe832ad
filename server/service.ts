/**
 * The fedtune.v1.Coordinator gRPC handlers over a {@link Coordinator}. Every handler answers
 * exactly once — a response, or one status from `toStatus()` with a sentence. Every request is
 * first held to its wire-type check (proto/raw-request.ts); signed requests are authenticated over
 * the bytes they arrived as, as proto/signing.ts defines.
 */
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
import { checkInBody, noteRefusedUpload, secAggBody, storeUpload, uploadHeaderChecks } from './round-requests.js';
import type { Forwarder } from './forwarding.js';
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

interface MethodCodec {
  responseDeserialize(b: Buffer): unknown;
}

/** A method's codec of the Coordinator service. */
function codecOf(method: string): MethodCodec {
  return (loadProtos().definition[SERVICE] as unknown as Record<string, MethodCodec>)[method];
}

/** A call's deadline, ms since the epoch (Infinity if it has none). */
function deadlineOf(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  return d instanceof Date ? d.getTime() : Number(d);
}

/**
 * Forward an authenticated unary request (as it arrived) to the program's driver, and relay its
 * answer: the response, or its status (server/forwarding.ts).
 */
async function forwardUnary<Res>(c: Coordinator, method: string, p: ProgramState, device: StoredDevice, req: object, call: { getDeadline(): grpc.Deadline }): Promise<Res> {
  const raw = rawRequestBytes(req);
  if (!raw) throw new Error(`${method}: the request's wire bytes were not kept (proto/raw-request.ts)`);
  const bytes = await (c.forwarder as Forwarder).forward({ programId: p.spec.id, method, deviceId: device.id, request: raw }, deadlineOf(call));
  return codecOf(method).responseDeserialize(Buffer.from(bytes)) as Res;
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

    CheckIn: unary(async (req, call) => {
      const device = await authenticate(c, 'CheckIn', req, req.auth, req.programId);
      const p = c.programOf(device, req.programId);
      if (c.forwards(p.spec.id)) return forwardUnary(c, 'CheckIn', p, device, req, call);
      return checkInBody(c, p, device, req);
    }),

    UploadUpdate: (call, callback) => {
      let answered = false;
      let header: UpdateHeader__Output | undefined;
      let device: StoredDevice | undefined;
      let program: ProgramState | undefined;
      let buf: Uint8Array | undefined;
      let got = 0;
      // set where the program's rounds are forwarded to their driver: the header chunk as it arrived
      let forwarded: { headerBytes: Uint8Array } | undefined;
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
            if (c.forwards(program.spec.id)) {
              // the driver checks the round when the whole update reaches it; until then, the round's longest life bounds the stream
              forwarded = { headerBytes: rawRequestBytes(chunk) as Uint8Array };
            }
            const roundDeadline = forwarded ? Date.now() + program.spec.roundDeadlineMs : await c.expectUpload(program, device.id, header.roundId);
            const expected = uploadHeaderChecks(c, program, header);
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
          // (a forwarded upload's refusals before it reaches the driver are no failure in its round: the driver never saw it)
          if (device && header && program && !forwarded) noteRefusedUpload(c, program, device, header, e);
          answer(e);
        }
      }));
      call.on('end', () => inOrder(async () => {
        if (answered) return;
        try {
          if (!header || !buf || !device || !program) refuse('invalid-argument', 'the update stream ended without a header');
          if (forwarded) {
            if (got !== buf.length) refuse('invalid-argument', `the stream ended after ${got} of the ${buf.length} bytes its header announced`);
            const bytes = await (c.forwarder as Forwarder).forward({ programId: program.spec.id, method: 'UploadUpdate', deviceId: device.id, request: forwarded.headerBytes, payload: buf }, deadlineOf(call));
            const res = codecOf('UploadUpdate').responseDeserialize(Buffer.from(bytes)) as { roundId: string; bytesReceived: number };
            return answer(null, res.bytesReceived, res.roundId);
          }
          const { roundId } = header;
          const bytes = got;
          await storeUpload(c, program, device, header, buf, got);
          answer(null, bytes, roundId);
        } catch (e) {
          answer(e);
        }
      }));
      // 'cancelled' also comes after every answered upload: build no error (and its stack) for it then
      call.on('error', () => answered || answer(new CoordinatorError('unavailable', 'the upload stream broke')));
      call.on('cancelled', () => answered || answer(new CoordinatorError('unavailable', 'the device left the upload')));
    },

    SecAgg: unary(async (req, call) => {
      const device = await authenticate(c, 'SecAgg', req, req.auth, req.programId);
      const p = c.programOf(device, req.programId);
      if (c.forwards(p.spec.id)) return forwardUnary(c, 'SecAgg', p, device, req, call);
      return secAggBody(c, p, device, req, requestBytes('SecAgg', req));
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
