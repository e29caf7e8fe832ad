/**
 * Domain errors of the coordinator and the one mapping from errors to gRPC statuses. Handlers
 * throw {@link CoordinatorError} (or let a codec WireFormatError through) and answer with `toStatus(e)`: every failure leaves with a code and a sentence,
 * never as UNKNOWN.
 */
import * as grpc from '@grpc/grpc-js';
import { WireFormatError } from '../proto/wire-error.js';
import { isStorageUnavailable } from './storage/unavailable.js';

/** Why a request failed, in domain terms. */
export type FailureKind =
  | 'invalid-argument'
  | 'unauthenticated'
  | 'permission-denied'
  | 'not-found'
  | 'already-exists'
  | 'failed-precondition'
  | 'deadline-exceeded'
  | 'resource-exhausted'
  | 'out-of-range'
  | 'unavailable'
  | 'internal';

const CODES: Readonly<Record<FailureKind, grpc.status>> = {
  'invalid-argument': grpc.status.INVALID_ARGUMENT,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  'permission-denied': grpc.status.PERMISSION_DENIED,
  'not-found': grpc.status.NOT_FOUND,
  'already-exists': grpc.status.ALREADY_EXISTS,
  'failed-precondition': grpc.status.FAILED_PRECONDITION,
  'deadline-exceeded': grpc.status.DEADLINE_EXCEEDED,
  'resource-exhausted': grpc.status.RESOURCE_EXHAUSTED,
  'out-of-range': grpc.status.OUT_OF_RANGE,
  unavailable: grpc.status.UNAVAILABLE,
  internal: grpc.status.INTERNAL,
};

/** A refused or failed request: its kind and a sentence for the device's operator. */
export class CoordinatorError extends Error {
  override name = 'CoordinatorError';
  constructor(
    readonly kind: FailureKind,
    message: string,
  ) {
    super(message);
  }
}

/** Shorthand: throw a CoordinatorError. */
export function refuse(kind: FailureKind, message: string): never {
  throw new CoordinatorError(kind, message);
}

/**
 * The CoordinatorError that `toStatus` turns into exactly this status (code and sentence): for
 * relaying another replica's answer. A code no kind maps to becomes INTERNAL with the sentence.
 */
export function statusError(code: grpc.status, details: string): CoordinatorError {
  const kind = (Object.keys(CODES) as FailureKind[]).find((k) => CODES[k] === code);
  if (typeof details !== 'string') throw new TypeError('statusError: details must be a string');
  return new CoordinatorError(kind ?? 'internal', details);
}

/** A gRPC status object for a handler's callback or `emit('error')`. */
export interface StatusObject {
  readonly code: grpc.status;
  readonly details: string;
}

/**
 * Longest sentence a status carries, in characters. Sentences may quote what a peer sent (an id,
 * a name); unbounded, a quote could outgrow the HTTP/2 header block the status travels in, and
 * then no status would ever leave (the call and its connection would stall).
 */
export const MAX_DETAILS_CHARS = 500;

/** A sentence cut to {@link MAX_DETAILS_CHARS} (whole code points, "…" where it was cut). */
export function boundedDetails(sentence: string): string {
  if (sentence.length <= MAX_DETAILS_CHARS) return sentence;
  return `${Array.from(sentence.slice(0, MAX_DETAILS_CHARS + 1)).slice(0, MAX_DETAILS_CHARS - 1).join('')}…`;
}

/** A peer-supplied value for a sentence: at most `max` characters (default 80), "…" where it was cut. */
export function quoted(value: string, max = 80): string {
  return value.length <= max ? value : `${Array.from(value.slice(0, max + 1)).slice(0, max - 1).join('')}…`;
}

/**
 * Map any error to a gRPC status with a human sentence: a database outage becomes UNAVAILABLE
 * (retryable, see storage/unavailable.ts), programming errors INTERNAL.
 */
export function toStatus(e: unknown): StatusObject {
  if (e instanceof CoordinatorError) return { code: CODES[e.kind], details: boundedDetails(e.message) };
  if (e instanceof WireFormatError) return { code: grpc.status.INVALID_ARGUMENT, details: boundedDetails(e.message) };
  const msg = e instanceof Error ? e.message : String(e);
  if (isStorageUnavailable(e)) return { code: grpc.status.UNAVAILABLE, details: boundedDetails(`the coordinator's database is unavailable (${msg}); try again or another coordinator address`) };
  return { code: grpc.status.INTERNAL, details: boundedDetails(`the coordinator failed: ${msg}`) };
}
