/**
 * The exact bytes a request signature covers.
 */
import { createHash } from 'node:crypto';
import { loadProtos } from './load.js';

/**
 * The payload a request signature covers: the request serialised with `auth` unset, by the
 * method's own serializer, in canonical form (defaults written out). `method` is "Service/Method" as in the package definition, e.g.
 * "fedtune.v1.Coordinator/CheckIn"; for UploadUpdate pass the header chunk `{ header }`, whose
 * header's `auth` is unset likewise.
 */
export function signingPayload(method: string, request: Record<string, unknown>): Uint8Array {
  if (!request || typeof request !== 'object') throw new TypeError('signingPayload: request must be a message object');
  const { definition } = loadProtos();
  const [service, name] = method.split('/');
  const svc = definition[service] as Record<string, { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): unknown }> | undefined;
  const m = svc?.[name];
  if (!m || typeof m.requestSerialize !== 'function') throw new RangeError(`signingPayload: unknown method "${method}"`);
  const stripped = request.header && typeof request.header === 'object' ? { header: { ...(request.header as object), auth: null } } : { ...request, auth: null };
  // canonical form: a field left unset and one set to its default must sign alike, so serialise
  // the message as decoded (every field present, defaults filled in)
  return m.requestSerialize(m.requestDeserialize(m.requestSerialize(stripped)));
}

/** hex SHA-256 of a signing payload (what goes into the signed string). */
export function payloadDigest(payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex');
}
