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
import { DirectoryBlobBackend, type BlobBackend, type BlobChunk as StoredChunk } from './storage/blobs.js';
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
export type Authorize = (request: DownloadBlobRequest__Output, method: string) => Refusal | null | Promise<Refusal | null>;

/**
 * Admits an authorized download as one of its requester's open streams: the release to call
 * when the stream ends, or a refusal (the requester holds too many).
 */
export type AdmitStream = (request: DownloadBlobRequest__Output) => (() => void) | Refusal;

/**
 * The DownloadBlob handler over a store (a local folder, or any blob backend: PostgreSQL's for
 * replicas); `admit` caps each requester's open streams (none by default).
 */
export function downloadBlobHandler(blobs: BlobStore | BlobBackend, authorize: Authorize, admit?: AdmitStream): grpc.handleServerStreamingCall<DownloadBlobRequest__Output, BlobChunk> {
  const backend: BlobBackend = blobs instanceof BlobStore ? new DirectoryBlobBackend(blobs.dir) : blobs;
  return (call) => {
    let finished = false;
    const fail = (r: Refusal): void => {
      if (finished) return;
      finished = true;
      call.emit('error', { code: r.code, details: boundedDetails(r.details) });
    };
    serveBlob(call, backend, authorize, admit, fail).catch((e: unknown) => fail({ code: grpc.status.INTERNAL, details: `serving the blob failed: ${(e as Error).message}` }));
  };
}

async function serveBlob(
  call: grpc.ServerWritableStream<DownloadBlobRequest__Output, BlobChunk>,
  store: BlobBackend,
  authorize: Authorize,
  admit: AdmitStream | undefined,
  fail: (r: Refusal) => void,
): Promise<void> {
  {
    let finished = false;
    const req = call.request;
    const refusal = await authorize(req, 'DownloadBlob');
    if (refusal) return fail(refusal);
    if (!/^[0-9a-f]{64}$/.test(req.sha256)) return fail({ code: grpc.status.INVALID_ARGUMENT, details: `"${req.sha256}" is not a hex SHA-256` });
    if (!(await store.has(req.sha256))) return fail({ code: grpc.status.NOT_FOUND, details: `no blob ${req.sha256} on this coordinator` });
    const total = await store.size(req.sha256);
    if (call.cancelled) return;
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
    // a local folder is read as before (synchronously, no re-hash per download); other backends asynchronously
    const reader: Iterator<StoredChunk> | AsyncIterator<StoredChunk> = store instanceof DirectoryBlobBackend ? store.store.readChunks(req.sha256, req.offset, chunkBytes) : store.readChunks(req.sha256, req.offset, chunkBytes);
    // one chunk in flight at a time: the next is read once the last has left for the client (a
    // slow or stalled client holds one chunk of server memory, not a writable buffer's sixteen)
    const pump = async (): Promise<void> => {
      try {
        if (call.cancelled || finished) return;
        const next = await reader.next();
        if (call.cancelled || finished) return;
        if (next.done) {
          finished = true;
          call.end();
          return;
        }
        const c = next.value;
        call.write({ sha256: req.sha256, offset: c.offset, data: Buffer.from(c.data.buffer, c.data.byteOffset, c.data.byteLength), totalSize: total }, () => setImmediate(() => void pump()));
      } catch (e) {
        finished = true;
        fail({ code: grpc.status.INTERNAL, details: `reading blob ${req.sha256} failed: ${(e as Error).message}` });
      }
    };
    // 'cancelled' comes once the call is over: the client left, or the status went out after the
    // last chunk left the server (grpc-js buffers written chunks until flow control lets them go)
    call.on('cancelled', () => {
      finished = true;
      release();
      void reader.return?.(undefined);
    });
    await pump();
  }
}
