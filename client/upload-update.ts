/**
 * Upload one sealed update as a client stream: the signed header, then data chunks of at most
 * 1 MiB, written with backpressure (waiting for 'drain' when the transport is full).
 */
import { createHash } from 'node:crypto';
import type { CoordinatorClient } from '../proto/generated/fedtune/v1/Coordinator.js';
import type { UpdateHeader } from '../proto/generated/fedtune/v1/UpdateHeader.js';
import type { UploadUpdateResponse__Output } from '../proto/generated/fedtune/v1/UploadUpdateResponse.js';
import type { SignKeyPair } from '../privacy/sign.js';
import { authFor } from './rpc.js';

/** Largest data chunk a device sends. */
export const UPLOAD_CHUNK_BYTES = 1 << 20;

/** What the header says besides auth and the payload's size and hash. */
export interface UploadMeta {
  readonly programId: string;
  readonly roundId: string;
  readonly numExamples: number;
  readonly encoding: string;
  readonly unclipped: boolean;
}

/** Send `sealed` for a round; resolves with the coordinator's receipt or rejects with its status. */
export function uploadUpdate(
  client: CoordinatorClient,
  deviceId: string,
  keys: SignKeyPair,
  meta: UploadMeta,
  sealed: Uint8Array,
  options: { deadlineMs?: number; chunkBytes?: number } = {},
): Promise<UploadUpdateResponse__Output> {
  const chunkBytes = options.chunkBytes ?? UPLOAD_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`uploadUpdate: chunkBytes must be a positive integer, got ${chunkBytes}`);
  const header: UpdateHeader = { ...meta, payloadBytes: sealed.length, payloadSha256: createHash('sha256').update(sealed).digest('hex') };
  const auth = authFor('fedtune.v1.Coordinator/UploadUpdate', { header }, deviceId, keys);
  return new Promise((resolve, reject) => {
    const call = client.UploadUpdate({ deadline: Date.now() + (options.deadlineMs ?? 120_000) }, (err, res) => (err ? reject(err) : resolve(res as UploadUpdateResponse__Output)));
    let off = 0;
    const pump = (): void => {
      while (off < sealed.length) {
        const end = Math.min(sealed.length, off + chunkBytes);
        const ok = call.write({ data: Buffer.from(sealed.buffer, sealed.byteOffset + off, end - off) });
        off = end;
        if (!ok) {
          call.once('drain', pump);
          return;
        }
      }
      call.end();
    };
    call.write({ header: { ...header, auth } });
    pump();
  });
}
