/**
 * Content-addressed blobs (bases, adapter versions) behind one asynchronous interface: a shared
 * directory (the existing BlobStore) or PostgreSQL's chunked rows (postgres-blobs.ts). A blob's
 * name is the hex SHA-256 of its bytes; reads come in chunks from any offset (resumable
 * downloads), and a read from offset 0 re-hashes what it served, failing at the end if the bytes
 * no longer match the name.
 */
import { createHash } from 'node:crypto';
import { BlobStore, MAX_CHUNK_BYTES, type StoredBlob } from '../blob-store.js';

export type { StoredBlob };

/** One chunk of a blob read. */
export interface BlobChunk {
  readonly offset: number;
  readonly data: Uint8Array;
  /** The blob's size. */
  readonly total: number;
}

/** The stored bytes of a blob do not hash to its name. */
export class BlobIntegrityError extends Error {
  constructor(readonly sha256: string) {
    super(`Blob ${sha256}'s stored bytes do not hash to its name: it is corrupt and must be stored again.`);
    this.name = 'BlobIntegrityError';
  }
}

/** Where blobs live. */
export interface BlobBackend {
  /** Store bytes (idempotent) and return their identity. */
  put(bytes: Uint8Array): Promise<StoredBlob>;
  /** Copy a file in, streaming (for bases larger than memory). */
  putFile(path: string): Promise<StoredBlob>;
  /** True if the blob is stored (completely). */
  has(sha256: string): Promise<boolean>;
  /** Size in bytes; RangeError if absent. */
  size(sha256: string): Promise<number>;
  /** Chunks of at most `chunkBytes` (≤ MAX_CHUNK_BYTES) from `offset` to the end; RangeError if absent or offset is outside [0, size]. */
  readChunks(sha256: string, offset?: number, chunkBytes?: number): AsyncGenerator<BlobChunk>;
  /** Re-hash a stored blob: false if its bytes no longer match its name. */
  verify(sha256: string): Promise<boolean>;
}

/** Pass chunks through, hashing them when they start at 0; throw BlobIntegrityError at the end on a mismatch. */
export async function* verifiedChunks(sha256: string, offset: number, chunks: AsyncIterable<BlobChunk> | Iterable<BlobChunk>): AsyncGenerator<BlobChunk> {
  const hash = offset === 0 ? createHash('sha256') : undefined;
  for await (const c of chunks) {
    hash?.update(c.data);
    yield c;
  }
  if (hash && hash.digest('hex') !== sha256) throw new BlobIntegrityError(sha256);
}

/** Check a chunk size argument the way both backends do. */
export function checkChunkBytes(fn: string, chunkBytes: number): number {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`${fn}: chunkBytes must be a positive integer, got ${chunkBytes}`);
  return Math.min(chunkBytes, MAX_CHUNK_BYTES);
}

/** Blobs in a directory (local, or shared by replicas over a network file system). */
export class DirectoryBlobBackend implements BlobBackend {
  /** The synchronous store underneath (what the single-node coordinator uses today). */
  readonly store: BlobStore;

  constructor(dir: string) {
    this.store = new BlobStore(dir);
  }

  async put(bytes: Uint8Array): Promise<StoredBlob> {
    return this.store.put(bytes);
  }

  async putFile(path: string): Promise<StoredBlob> {
    return this.store.putFile(path);
  }

  async has(sha256: string): Promise<boolean> {
    return this.store.has(sha256);
  }

  async size(sha256: string): Promise<number> {
    return this.store.size(sha256);
  }

  readChunks(sha256: string, offset = 0, chunkBytes = MAX_CHUNK_BYTES): AsyncGenerator<BlobChunk> {
    checkChunkBytes('DirectoryBlobBackend.readChunks', chunkBytes);
    return verifiedChunks(sha256, offset, this.store.readChunks(sha256, offset, chunkBytes));
  }

  async verify(sha256: string): Promise<boolean> {
    return this.store.verify(sha256);
  }
}
