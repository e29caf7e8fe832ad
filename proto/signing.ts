/**
 * The bytes a request signature covers (proto/CONTRACT.md, "Signing"): the request exactly as
 * it travels on the wire with its top-level `auth` field (number 1) removed; for UploadUpdate,
 * the header message's own bytes inside the first chunk, with the header's `auth` removed.
 * Any standard protobuf serialiser reproduces it: serialise the request without auth, sign those
 * bytes, then send the request with auth set.
 */
import { createHash } from 'node:crypto';
import { loadProtos } from './load.js';
import { WireFormatError } from './wire-error.js';
import { lastLengthDelimited, withoutField } from './wire-scan.js';

/** The service every signed request belongs to. */
export const COORDINATOR_SERVICE = 'fedtune.v1.Coordinator';

/** The field number of `auth` in every signed request (and of `header` in UpdateChunk). */
export const AUTH_FIELD = 1;

/**
 * The full gRPC method name a signature binds, "/fedtune.v1.Coordinator/CheckIn", from that or
 * "fedtune.v1.Coordinator/CheckIn"; RangeError for a method the service does not have.
 */
export function fullMethodName(method: string): string {
  if (typeof method !== 'string') throw new TypeError('fullMethodName: method must be a string');
  const known = KNOWN_METHODS.get(method);
  if (known) return known;
  const m = method.startsWith('/') ? method.slice(1) : method;
  const [service, name] = m.split('/');
  const svc = loadProtos().definition[service] as Record<string, unknown> | undefined;
  if (service !== COORDINATOR_SERVICE || !svc || !name || !(name in svc) || name === 'Enroll') throw new RangeError(`fullMethodName: unknown signed method "${method}"`);
  const full = `/${service}/${name}`;
  KNOWN_METHODS.set(method, full);
  return full;
}

/** Names already resolved (every signed request resolves its method twice): only valid ones are kept, so the map stays as small as the service. */
const KNOWN_METHODS = new Map<string, string>();

/**
 * The signing payload from a request's wire bytes (the coordinator's side). For UploadUpdate
 * `bytes` is the first chunk; WireFormatError if it carries no header.
 */
export function signingPayloadFromWire(method: string, bytes: Uint8Array): Uint8Array {
  const full = fullMethodName(method);
  if (full.endsWith('/UploadUpdate')) {
    const header = lastLengthDelimited(bytes, AUTH_FIELD);
    if (!header) throw new WireFormatError('the update stream must start with its header');
    return withoutField(header, AUTH_FIELD);
  }
  return withoutField(bytes, AUTH_FIELD);
}

/**
 * The signing payload of a request as this library serialises it (the device's side). `method`
 * is "fedtune.v1.Coordinator/CheckIn" (a leading "/" is fine); for UploadUpdate pass the header
 * chunk `{ header }`. Any `auth` in the request is ignored.
 */
export function signingPayload(method: string, request: Record<string, unknown>): Uint8Array {
  if (!request || typeof request !== 'object') throw new TypeError('signingPayload: request must be a message object');
  const full = fullMethodName(method);
  const name = full.slice(full.lastIndexOf('/') + 1);
  const m = (loadProtos().definition[COORDINATOR_SERVICE] as Record<string, { requestSerialize(v: unknown): Buffer }>)[name];
  const header = request.header;
  if (full.endsWith('/UploadUpdate') && (!header || typeof header !== 'object')) throw new TypeError('signingPayload: an UploadUpdate request is signed as its header chunk { header }');
  const unsigned = full.endsWith('/UploadUpdate') ? { header: { ...(header as object), auth: null } } : { ...request, auth: null };
  return signingPayloadFromWire(full, m.requestSerialize(unsigned));
}

/** hex SHA-256 of a signing payload (what goes into the signed string). */
export function payloadDigest(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}
