/**
 * Content-addressed blob storage on disk (base models, adapter versions): a blob's name is the
 * hex SHA-256 of its bytes. Writes are atomic (temp file, fsync, rename), so a crash never
 * leaves a partial blob under a real name; reads come in chunks from any offset, for resumable
 * downloads.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** A stored blob's identity and size. */
export interface StoredBlob {
  readonly sha256: string;
  readonly size: number;
}

const SHA = /^[0-9a-f]{64}$/;
import { MAX_CHUNK_BYTES } from '../proto/limits.js';

export { MAX_CHUNK_BYTES };

/** Blobs under one directory. */
export class BlobStore {
  constructor(readonly dir: string) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('BlobStore: dir must be a non-empty path');
    mkdirSync(dir, { recursive: true });
    // leftovers of writes interrupted by a crash
    for (const f of readdirSync(dir)) if (f.endsWith('.partial')) rmSync(join(dir, f), { force: true });
  }

  private file(sha256: string): string {
    if (typeof sha256 !== 'string' || !SHA.test(sha256)) throw new RangeError(`BlobStore: "${String(sha256)}" is not a hex SHA-256`);
    return join(this.dir, sha256);
  }

  /** Store bytes (idempotent) and return their identity. */
  put(bytes: Uint8Array): StoredBlob {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('BlobStore.put: bytes must be a Uint8Array');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const target = this.file(sha256);
    if (!existsSync(target)) {
      const tmp = `${target}.${process.pid}.${Date.now()}.partial`;
      const fd = openSync(tmp, 'w');
      try {
        let off = 0;
        while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, target);
    }
    return { sha256, size: bytes.length };
  }

  /** Copy a file into the store, hashing as it streams (for bases larger than memory). */
  putFile(path: string): StoredBlob {
    const src = openSync(path, 'r');
    const tmp = join(this.dir, `import.${process.pid}.${Date.now()}.partial`);
    const dst = openSync(tmp, 'w');
    const hash = createHash('sha256');
    let size = 0;
    try {
      const buf = new Uint8Array(MAX_CHUNK_BYTES);
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, size);
        if (n <= 0) break;
        hash.update(buf.subarray(0, n));
        let off = 0;
        while (off < n) off += writeSync(dst, buf, off, n - off);
        size += n;
      }
      fsyncSync(dst);
    } finally {
      closeSync(src);
      closeSync(dst);
    }
    const sha256 = hash.digest('hex');
    const target = this.file(sha256);
    if (existsSync(target)) rmSync(tmp);
    else renameSync(tmp, target);
    return { sha256, size };
  }

  /**
   * Store a file that `write` produces at the temp path it is given (e.g. a bundle of a
   * directory): the written file is hashed and moved under its name (idempotent).
   */
  putWritten(write: (tmpPath: string) => void): StoredBlob {
    if (typeof write !== 'function') throw new TypeError('BlobStore.putWritten: write must be a function');
    const tmp = join(this.dir, `written.${process.pid}.${Date.now()}.partial`);
    try {
      write(tmp);
      const fd = openSync(tmp, 'r+');
      const hash = createHash('sha256');
      let size = 0;
      try {
        const buf = new Uint8Array(MAX_CHUNK_BYTES);
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, size);
          if (n <= 0) break;
          hash.update(buf.subarray(0, n));
          size += n;
        }
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const sha256 = hash.digest('hex');
      const target = this.file(sha256);
      if (existsSync(target)) rmSync(tmp);
      else renameSync(tmp, target);
      return { sha256, size };
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** True if the blob is stored. */
  has(sha256: string): boolean {
    return existsSync(this.file(sha256));
  }

  /** Size in bytes; throws RangeError if absent. */
  size(sha256: string): number {
    const f = this.file(sha256);
    if (!existsSync(f)) throw new RangeError(`BlobStore: no blob ${sha256}`);
    return statSync(f).size;
  }

  /** Chunks of at most `chunkBytes` from `offset` to the end. */
  *readChunks(sha256: string, offset = 0, chunkBytes = MAX_CHUNK_BYTES): Generator<{ offset: number; data: Uint8Array; total: number }> {
    const f = this.file(sha256);
    if (!existsSync(f)) throw new RangeError(`BlobStore.readChunks: no blob ${sha256}`);
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`BlobStore.readChunks: chunkBytes must be a positive integer, got ${chunkBytes}`);
    const size = Math.min(chunkBytes, MAX_CHUNK_BYTES);
    const fd = openSync(f, 'r');
    try {
      const total = fstatSync(fd).size;
      if (!Number.isInteger(offset) || offset < 0 || offset > total) throw new RangeError(`BlobStore.readChunks: offset ${offset} is outside [0, ${total}]`);
      for (let pos = offset; pos < total; ) {
        const data = new Uint8Array(Math.min(size, total - pos));
        const n = readSync(fd, data, 0, data.length, pos);
        if (n <= 0) break;
        yield { offset: pos, data: data.subarray(0, n), total };
        pos += n;
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Re-hash a stored blob: false if its bytes no longer match its name. */
  verify(sha256: string): boolean {
    const hash = createHash('sha256');
    for (const c of this.readChunks(sha256)) hash.update(c.data);
    return hash.digest('hex') === sha256;
  }
}
