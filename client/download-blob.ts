/**
 * Resumable, verified blob download for devices. Bytes go to `<dest>.partial`; a later call
 * resumes from its size. When the stream ends the whole file is hashed: only a blob whose
 * SHA-256 matches its name is renamed to `dest` — a mismatch deletes the partial file and throws.
 */
import { closeSync, existsSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { sha256OfPath } from '../model/file-hash.js';
import type * as grpc from '@grpc/grpc-js';
import type { Auth } from '../proto/generated/fedtune/v1/Auth.js';
import type { BlobChunk__Output } from '../proto/generated/fedtune/v1/BlobChunk.js';
import type { CoordinatorClient } from '../proto/generated/fedtune/v1/Coordinator.js';

/** Options of {@link downloadBlob}. */
export interface DownloadOptions {
  /** Deadline of the whole call, ms from now. Default 10 minutes. */
  readonly deadlineMs?: number;
  /**
   * Auth for the request, or a function that signs the request itself (the offset it resumes
   * from is only known here).
   */
  readonly auth?: Auth | ((request: { sha256: string; offset: number; maxChunkBytes: number }) => Auth);
  readonly maxChunkBytes?: number;
  /** Called after every chunk with bytes on disk and the total. */
  readonly onProgress?: (have: number, total: number) => void;
}

/** The result of a download. */
export interface Downloaded {
  readonly path: string;
  readonly bytes: number;
  /** Bytes that were already on disk from an earlier, interrupted call. */
  readonly resumedFrom: number;
}


/** Download blob `sha256` to `dest`, resuming an earlier partial download. */
export function downloadBlob(client: CoordinatorClient, sha256: string, dest: string, opts: DownloadOptions = {}): Promise<Downloaded> {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new RangeError(`downloadBlob: "${sha256}" is not a hex SHA-256`);
  const partial = `${dest}.partial`;
  const resumedFrom = existsSync(partial) ? statSync(partial).size : 0;
  return new Promise<Downloaded>((resolve, reject) => {
    const fd = openSync(partial, 'a');
    let pos = resumedFrom;
    let settled = false;
    const settle = (err: Error | null): void => {
      if (settled) return;
      settled = true;
      closeSync(fd);
      if (err) return reject(err);
      if (sha256OfPath(partial) !== sha256) {
        rmSync(partial, { force: true });
        return reject(new Error(`downloadBlob: the bytes received do not hash to ${sha256}; the partial file was discarded`));
      }
      renameSync(partial, dest);
      resolve({ path: dest, bytes: pos, resumedFrom });
    };
    const request = { sha256, offset: resumedFrom, maxChunkBytes: opts.maxChunkBytes ?? 0 };
    const auth = typeof opts.auth === 'function' ? opts.auth(request) : (opts.auth ?? null);
    const call = client.DownloadBlob(
      { ...request, auth },
      { deadline: Date.now() + (opts.deadlineMs ?? 600_000) },
    );
    call.on('data', (c: BlobChunk__Output) => {
      if (c.offset !== pos || c.sha256 !== sha256) {
        call.cancel();
        return settle(new Error(`downloadBlob: expected bytes at ${pos} of ${sha256}, got ${c.offset} of ${c.sha256}`));
      }
      const data = c.data as Uint8Array;
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
      pos += data.length;
      opts.onProgress?.(pos, c.totalSize);
    });
    call.on('error', (e: grpc.ServiceError) => settle(e));
    call.on('end', () => settle(null));
  });
}
