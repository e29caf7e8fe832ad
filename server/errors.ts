/**
 * Domain errors of the coordinator and the one mapping from errors to gRPC statuses. Handlers
 * throw {@link CoordinatorError} (or let a codec WireFormatError through) and answer with `toStatus(e)`: every failure leaves with a code and a sentence,
 * never as UNKNOWN.
 */
import * as grpc from '@grpc/grpc-js';
import { WireFormatError } from '../proto/wire-error.js';

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

/** A gRPC status object for a handler's callback or `emit('error')`. */
export interface StatusObject {
  readonly code: grpc.status;
  readonly details: string;
}

/** Map any error to a gRPC status with a human sentence (programming errors become INTERNAL). */
export function toStatus(e: unknown): StatusObject {
  if (e instanceof CoordinatorError) return { code: CODES[e.kind], details: e.message };
  if (e instanceof WireFormatError) return { code: grpc.status.INVALID_ARGUMENT, details: e.message };
  const msg = e instanceof Error ? e.message : String(e);
  return { code: grpc.status.INTERNAL, details: `the coordinator failed: ${msg}` };
}
