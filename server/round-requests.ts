/**
 * The round requests — check-in, upload, SecAgg stages — of an authenticated device, apart from
 * their transport: what the gRPC handlers (server/service.ts) run for a request that arrived here,
 * and what a program's driver runs for a request a follower forwarded to it through PostgreSQL
 * (server/forwarding.ts). One body per request, so a forwarded request meets exactly the checks
 * of a local one.
 */
import { createHash } from 'node:crypto';
import type { CheckInRequest__Output } from '../proto/generated/fedtune/v1/CheckInRequest.js';
import type { CheckInResponse } from '../proto/generated/fedtune/v1/CheckInResponse.js';
import type { SecAggRequest__Output } from '../proto/generated/fedtune/v1/SecAggRequest.js';
import type { SecAggResponse } from '../proto/generated/fedtune/v1/SecAggResponse.js';
import type { UpdateHeader__Output } from '../proto/generated/fedtune/v1/UpdateHeader.js';
import type { UpdateChunk__Output } from '../proto/generated/fedtune/v1/UpdateChunk.js';
import type { UploadUpdateResponse } from '../proto/generated/fedtune/v1/UploadUpdateResponse.js';
import type { Auth__Output } from '../proto/generated/fedtune/v1/Auth.js';
import { trainingToWire } from '../proto/config-codec.js';
import { loadProtos } from '../proto/load.js';
import { requireWellFormed } from '../proto/raw-request.js';
import type { Coordinator, ProgramState } from './coordinator.js';
import { CoordinatorError, quoted, refuse, toStatus } from './errors.js';
import { secAggStage } from './secagg-service.js';
import type { ForwardAnswer, ForwardedRequest, StoredDevice } from './storage/index.js';

function blobRef(sha256: string, size: number, format: string): { sha256: string; sizeBytes: number; format: string; container: string; contentSha256: string } {
  return { sha256, sizeBytes: size, format, container: '', contentSha256: '' };
}

/** The newest signed release of a program's version `version`, for the wire (null if it has none). */
export function releaseOf(p: ProgramState, version: number): { manifest: Buffer; signature: Buffer } | null {
  const rel = p.releases.all().filter((r) => r.version === version && r.signature.length > 0).pop();
  return rel ? { manifest: Buffer.from(rel.manifest), signature: Buffer.from(rel.signature) } : null;
}

/** CheckIn of an authenticated device of program `p`: work, or when to come back. */
export async function checkInBody(c: Coordinator, p: ProgramState, device: StoredDevice, req: CheckInRequest__Output): Promise<CheckInResponse> {
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
}

/** A SecAgg stage of an authenticated device of program `p`; `bytes`: the request's size on the wire. */
export async function secAggBody(c: Coordinator, p: ProgramState, device: StoredDevice, req: SecAggRequest__Output, bytes: number): Promise<SecAggResponse> {
  await c.refuseUnserved(p); // a secure aggregation's stages all reach its driver
  return secAggStage(p, device, req, bytes);
}

/**
 * The checks of an update's header that need no round (its size and digest's form). Returns the
 * sealed payload's size in bytes.
 */
export function uploadHeaderChecks(c: Coordinator, p: ProgramState, header: UpdateHeader__Output): number {
  const expected = c.sealedBytes(p, header.encoding);
  if (header.payloadBytes !== expected) refuse('invalid-argument', `payload_bytes is ${header.payloadBytes}, but a sealed "${header.encoding}" update for this program is ${expected} bytes`);
  if (!/^[0-9a-f]{64}$/.test(header.payloadSha256)) refuse('invalid-argument', 'payload_sha256 must be a hex SHA-256');
  return expected;
}

/**
 * A complete update (its `got` bytes in `buf`, the header's announced size): checked against its
 * header, accepted (durable, for shared rounds) and acknowledged once the round's outcome is committed.
 */
export async function storeUpload(c: Coordinator, p: ProgramState, device: StoredDevice, header: UpdateHeader__Output, buf: Uint8Array, got: number): Promise<UploadUpdateResponse> {
  if (got !== buf.length) refuse('invalid-argument', `the stream ended after ${got} of the ${buf.length} bytes its header announced`);
  if (createHash('sha256').update(buf).digest('hex') !== header.payloadSha256) refuse('invalid-argument', 'the payload does not match payload_sha256');
  // shared rounds (PostgreSQL): the update is committed to the database before this resolves
  await c.acceptUpdate(device, p, header.roundId, header.encoding, header.numExamples, buf, header.unclipped);
  // an update that closed its round is acknowledged once the round's outcome is committed (as before the store was asynchronous)
  await p.runner.settled().catch(() => undefined);
  return { roundId: header.roundId, bytesReceived: got };
}

/** An update refused at its header (`e`): a selected device's failure in the round, unless the refusal is not the device's doing. */
export function noteRefusedUpload(c: Coordinator, p: ProgramState, device: StoredDevice, header: UpdateHeader__Output, e: unknown): void {
  if (e instanceof CoordinatorError && e.kind !== 'unauthenticated' && e.kind !== 'unavailable') c.rejectUpload(p, device.id, header.roundId, e.message, e.kind);
}

/**
 * A whole update a follower read and forwarded (its header and sealed payload): the checks the
 * header meets on arrival here, then those of its end.
 */
export async function forwardedUploadBody(c: Coordinator, p: ProgramState, device: StoredDevice, header: UpdateHeader__Output, payload: Uint8Array): Promise<UploadUpdateResponse> {
  let expected: number;
  try {
    const roundDeadline = await c.expectUpload(p, device.id, header.roundId);
    expected = uploadHeaderChecks(c, p, header);
    if (Date.now() > roundDeadline) refuse('deadline-exceeded', `round ${header.roundId}'s deadline passed before the update arrived in full`);
    if (payload.length > expected) refuse('resource-exhausted', `the stream sent more than the ${expected} bytes its header announced`);
  } catch (e) {
    noteRefusedUpload(c, p, device, header, e);
    throw e;
  }
  const buf = new Uint8Array(expected);
  buf.set(payload);
  return storeUpload(c, p, device, header, buf, payload.length);
}

/** The methods a follower forwards to a program's driver. */
export const FORWARDED_METHODS: readonly string[] = Object.freeze(['CheckIn', 'UploadUpdate', 'SecAgg']);

interface MethodCodec {
  requestDeserialize(b: Buffer): unknown;
  responseSerialize(v: unknown): Buffer;
}

/** The row must name the device and program the request's own (signed) auth and program name. */
function sameRequester(r: ForwardedRequest, auth: Auth__Output | null | undefined, programId: string): void {
  if (auth?.deviceId !== r.deviceId) refuse('invalid-argument', `the forwarded ${r.method} names device "${quoted(r.deviceId)}", but its request is signed by "${quoted(auth?.deviceId ?? '')}"`);
  if (programId !== r.programId) refuse('invalid-argument', `the forwarded ${r.method} names program "${quoted(r.programId)}", but its request names "${quoted(programId)}"`);
}

/**
 * Run a request a follower forwarded (server/forwarding.ts) on this replica, the program's
 * driver. The follower authenticated it (its signature and nonce); here it meets every other
 * check of a local request. Never rejects: a refusal, or a malformed row, is an answer (a status).
 */
export async function executeForwarded(c: Coordinator, r: ForwardedRequest): Promise<ForwardAnswer> {
  try {
    const svc = loadProtos().definition['fedtune.v1.Coordinator'] as unknown as Record<string, MethodCodec>;
    if (!FORWARDED_METHODS.includes(r.method)) refuse('invalid-argument', `a forwarded request names method "${quoted(r.method)}", which is not forwarded`);
    const codec = svc[r.method];
    const req = codec.requestDeserialize(Buffer.from(r.request)) as object;
    requireWellFormed(req);
    const device = await c.forwardedDevice(r.deviceId);
    let res: CheckInResponse | SecAggResponse | UploadUpdateResponse;
    if (r.method === 'CheckIn') {
      const q = req as CheckInRequest__Output;
      sameRequester(r, q.auth, q.programId);
      res = await checkInBody(c, c.programOf(device, q.programId), device, q);
    } else if (r.method === 'SecAgg') {
      const q = req as SecAggRequest__Output;
      sameRequester(r, q.auth, q.programId);
      res = await secAggBody(c, c.programOf(device, q.programId), device, q, r.request.length);
    } else {
      const chunk = req as UpdateChunk__Output;
      const header = chunk.part === 'header' ? chunk.header : undefined;
      if (!header) return refuse('invalid-argument', 'a forwarded update must carry its header chunk');
      sameRequester(r, header.auth, header.programId);
      res = await forwardedUploadBody(c, c.programOf(device, header.programId), device, header, r.payload);
    }
    return { code: 0, details: '', response: codec.responseSerialize(res) };
  } catch (e) {
    const s = toStatus(e);
    return { code: s.code, details: s.details };
  }
}
