/**
 * The DownloadBlob RPC: a content-addressed blob as a server stream of ≤ 1 MiB chunks from a
 * requested offset, one chunk in flight at a time, honouring cancellation. Who may download is
 * decided by an injected `authorize` (request signatures arrive with the coordinator service),
 * and how many streams one requester may hold by an optional `admit`. Every call ends exactly
 * once: with end() or with one status carrying a human sentence.
 */
import * as grpc from '@grpc/grpc-js';
import type { BlobChunk } from '../proto/generated/fedtune/v1/BlobChunk.js';
import type { DownloadBlobRequest__Output } from '../proto/generated/fedtune/v1/DownloadBlobRequest.js';
import { BlobStore, MAX_CHUNK_BYTES } from './blob-store.js';
import { boundedDetails } from './errors.js';

/** The smallest chunk the coordinator sends (a smaller max_chunk_bytes is raised to it): 64 KiB. */
export const MIN_CHUNK_BYTES = 64 * 1024;

/**
 * The chunk size for a requested max_chunk_bytes: 0 = the default 1 MiB; values below 64 KiB are
 * raised to 64 KiB and values above 1 MiB lowered to 1 MiB. Negative values are refused.
 */
export function chunkBytesFor(maxChunkBytes: number): number {
  if (maxChunkBytes === 0) return MAX_CHUNK_BYTES;
  return Math.min(MAX_CHUNK_BYTES, Math.max(MIN_CHUNK_BYTES, maxChunkBytes));
}

/** A refusal: the gRPC status and its sentence. */
export interface Refusal {
  readonly code: grpc.status;
  readonly details: string;
}

/** Decides whether a request may proceed; null = allowed. */
export type Authorize = (request: DownloadBlobRequest__Output, method: string) => Refusal | null;

/**
 * Admits an authorized download as one of its requester's open streams: the release to call
 * when the stream ends, or a refusal (the requester holds too many).
 */
export type AdmitStream = (request: DownloadBlobRequest__Output) => (() => void) | Refusal;

/** The DownloadBlob handler over a store; `admit` caps each requester's open streams (none by default). */
export function downloadBlobHandler(store: BlobStore, authorize: Authorize, admit?: AdmitStream): grpc.handleServerStreamingCall<DownloadBlobRequest__Output, BlobChunk> {
  return (call) => {
    let finished = false;
    const fail = (r: Refusal): void => {
      if (finished) return;
      finished = true;
      call.emit('error', { code: r.code, details: boundedDetails(r.details) });
    };
    const req = call.request;
    const refusal = authorize(req, 'DownloadBlob');
    if (refusal) return fail(refusal);
    if (!/^[0-9a-f]{64}$/.test(req.sha256)) return fail({ code: grpc.status.INVALID_ARGUMENT, details: `"${req.sha256}" is not a hex SHA-256` });
    if (!store.has(req.sha256)) return fail({ code: grpc.status.NOT_FOUND, details: `no blob ${req.sha256} on this coordinator` });
    const total = store.size(req.sha256);
    if (!Number.isInteger(req.offset) || req.offset < 0 || req.offset > total) {
      return fail({ code: grpc.status.OUT_OF_RANGE, details: `offset ${req.offset} is outside the blob's ${total} bytes` });
    }
    if (!Number.isInteger(req.maxChunkBytes) || req.maxChunkBytes < 0) return fail({ code: grpc.status.INVALID_ARGUMENT, details: `max_chunk_bytes must be ≥ 0 (0 = the default 1 MiB), got ${req.maxChunkBytes}` });
    const chunkBytes = chunkBytesFor(req.maxChunkBytes);
    let release = (): void => {};
    if (admit) {
      const admitted = admit(req);
      if (typeof admitted !== 'function') return fail(admitted);
      release = admitted;
    }
    const reader = store.readChunks(req.sha256, req.offset, chunkBytes);
    // one chunk in flight at a time: the next is read once the last has left for the client (a
    // slow or stalled client holds one chunk of server memory, not a writable buffer's sixteen)
    const pump = (): void => {
      try {
        if (call.cancelled || finished) return;
        const next = reader.next();
        if (next.done) {
          finished = true;
          call.end();
          return;
        }
        const c = next.value;
        call.write({ sha256: req.sha256, offset: c.offset, data: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength), totalSize: total }, () => setImmediate(pump));
      } catch (e) {
        fail({ code: grpc.status.INTERNAL, details: `reading blob ${req.sha256} failed: ${(e as Error).message}` });
      }
    };
    // 'cancelled' comes once the call is over: the client left, or the status went out after the
    // last chunk left the server (grpc-js buffers written chunks until flow control lets them go)
    call.on('cancelled', () => {
      finished = true;
      release();
      reader.return(undefined);
    });
    pump();
  };
}
