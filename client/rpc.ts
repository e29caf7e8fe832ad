/**
 * Signed calls to the coordinator with deadlines, and retries with exponential backoff and full
 * jitter for the statuses that mean "try again" (UNAVAILABLE, and RESOURCE_EXHAUSTED from load
 * shedding). Every attempt is signed afresh: a new nonce and timestamp.
 */
import * as grpc from '@grpc/grpc-js';
import { randomInt } from 'node:crypto';
import { fullMethodName, signingPayload } from '../proto/signing.js';
import type { Auth } from '../proto/generated/fedtune/v1/Auth.js';
import type { EnrollRequest } from '../proto/generated/fedtune/v1/EnrollRequest.js';
import { signEnrolment, signRequest, type SignKeyPair } from '../privacy/sign.js';
import { tlsFailure } from './tls.js';

/** Retry policy. */
export interface RetryPolicy {
  /** Attempts in all, first included. Default 8. */
  readonly attempts?: number;
  /** First backoff, ms. Default 250. */
  readonly baseMs?: number;
  /** Largest backoff, ms. Default 30000. */
  readonly maxMs?: number;
  /** Called before each wait. */
  readonly onRetry?: (attempt: number, delayMs: number, error: grpc.ServiceError) => void;
}

const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED]);

/** True for a status worth retrying (not a TLS handshake refused for a lasting reason: client/tls.ts). */
export function isRetryable(e: unknown): e is grpc.ServiceError {
  return typeof e === 'object' && e !== null && RETRYABLE.has((e as grpc.ServiceError).code) && tlsFailure(e, '') === undefined;
}

/** Backoff before retry `attempt` (1-based): uniform in [0, min(max, base·2^(attempt−1))]. */
export function backoffMs(attempt: number, baseMs = 250, maxMs = 30_000): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(30, attempt - 1));
  return randomInt(0, Math.max(1, Math.floor(cap)) + 1);
}

/** Run `call` until it succeeds, fails with a status not worth retrying, or runs out of attempts. */
export async function withRetry<T>(call: () => Promise<T>, policy: RetryPolicy = {}, signal?: AbortSignal): Promise<T> {
  const attempts = policy.attempts ?? 8;
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (!isRetryable(e) || attempt >= attempts || signal?.aborted) throw e;
      const delay = backoffMs(attempt, policy.baseMs, policy.maxMs);
      policy.onRetry?.(attempt, delay, e);
      await sleep(delay, signal);
    }
  }
}

/** Sleep that an AbortSignal ends early. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Options of {@link authFor}. */
export interface AuthOptions {
  /** The program the signature binds; by default the request's own program_id (DownloadBlob has none: pass the device's). */
  readonly programId?: string;
  /** Signing time, ms since the epoch. Default now. */
  readonly now?: number;
  /** The nonce (16–64 bytes, lowercase hex). Default 16 fresh random bytes. */
  readonly nonce?: string;
}

/**
 * Sign a request for `method` ("fedtune.v1.Coordinator/X") as the device, by the contract's
 * signing rule (proto/signing.ts); for UploadUpdate pass the header chunk `{ header }`.
 */
export function authFor(method: string, request: Record<string, unknown>, deviceId: string, keys: SignKeyPair, options: AuthOptions = {}): Auth {
  const full = fullMethodName(method);
  const header = request?.header as { programId?: unknown } | undefined;
  const named = typeof request?.programId === 'string' ? request.programId : typeof header?.programId === 'string' ? header.programId : undefined;
  const programId = options.programId ?? named;
  if (typeof programId !== 'string') throw new TypeError(`authFor: ${full} names no program_id; pass options.programId (the device's program)`);
  const s = signRequest({ method: full, programId }, deviceId, signingPayload(full, request), keys, options.now, options.nonce);
  return { deviceId, nonce: s.nonce, timestampMs: s.timestamp, signature: Buffer.from(s.signature) };
}

/** An EnrollRequest with its proof of possession of `sign` (fresh: sign a new one for every attempt). */
export function enrollRequestFor(programId: string, enrolmentToken: string, sign: SignKeyPair, boxPublicKey: Uint8Array, label = '', now?: number): EnrollRequest {
  const p = signEnrolment(programId, sign, boxPublicKey, now);
  return {
    programId,
    enrolmentToken,
    signPublicKey: Buffer.from(sign.publicKey),
    boxPublicKey: Buffer.from(boxPublicKey),
    label,
    proof: { nonce: p.nonce, timestampMs: p.timestamp, signature: Buffer.from(p.signature) },
  };
}

/** Promise form of a unary call with a deadline: `invoke(options, callback)` starts the call. */
export function unaryCall<Res>(invoke: (options: grpc.CallOptions, cb: grpc.requestCallback<Res>) => unknown, deadlineMs: number): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    invoke({ deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}
