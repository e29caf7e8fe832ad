/**
 * Blobs in PostgreSQL: each blob is rows of fixed-size chunks (`blob_chunks`) plus one `blobs`
 * row written in the same transaction, so a blob is visible only once all its bytes are. Every
 * replica reaches it through the database; a read from any offset fetches only the chunks it
 * needs, one row at a time (no transaction held open across a slow download).
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { MAX_CHUNK_BYTES } from '../blob-store.js';
import { checkChunkBytes, verifiedChunks, type BlobBackend, type BlobChunk, type StoredBlob } from './blobs.js';
import type { SqlExecutor } from './sql.js';

const SHA = /^[0-9a-f]{64}$/;

function checkSha(fn: string, sha256: string): void {
  if (typeof sha256 !== 'string' || !SHA.test(sha256)) throw new RangeError(`${fn}: "${String(sha256)}" is not a hex SHA-256`);
}

/** Read a file in `size`-byte pieces. */
function* fileChunks(path: string, size: number): Generator<Uint8Array> {
  const fd = openSync(path, 'r');
  try {
    for (let pos = 0; ; ) {
      const buf = new Uint8Array(size);
      let n = 0;
      while (n < size) {
        const got = readSync(fd, buf, n, size - n, pos + n);
        if (got <= 0) break;
        n += got;
      }
      if (n === 0) return;
      yield buf.subarray(0, n);
      pos += n;
      if (n < size) return;
    }
  } finally {
    closeSync(fd);
  }
}

/** Blobs in the database an executor reaches (migrated to schema 3 or later). */
export class PostgresBlobBackend implements BlobBackend {
  /**
   * @param db the database (a PostgresExecutor; any engine's executor works the same way)
   * @param chunkBytes bytes per stored row (tests use small ones); at most MAX_CHUNK_BYTES
   */
  constructor(
    private readonly db: SqlExecutor,
    readonly chunkBytes = MAX_CHUNK_BYTES,
  ) {
    checkChunkBytes('PostgresBlobBackend', chunkBytes);
    if (chunkBytes > MAX_CHUNK_BYTES) throw new RangeError(`PostgresBlobBackend: chunkBytes must be at most ${MAX_CHUNK_BYTES}, got ${chunkBytes}`);
  }

  /** Store `pieces` (each at most chunkBytes; re-iterable) under `sha256` unless it is there. */
  private async store(sha256: string, size: number, pieces: () => Iterable<Uint8Array>): Promise<StoredBlob> {
    if (await this.has(sha256)) return { sha256, size };
    await this.db.transaction(async (tx) => {
      let idx = 0;
      for (const p of pieces()) await tx.run('INSERT INTO blob_chunks (sha256, idx, data) VALUES (?, ?, ?) ON CONFLICT (sha256, idx) DO NOTHING', [sha256, idx++, p]);
      await tx.run('INSERT INTO blobs (sha256, size, chunk_bytes, created_ms) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING', [sha256, size, this.chunkBytes, Date.now()]);
    });
    return { sha256, size };
  }

  async put(bytes: Uint8Array): Promise<StoredBlob> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('PostgresBlobBackend.put: bytes must be a Uint8Array');
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const cb = this.chunkBytes;
    return this.store(sha256, bytes.length, function* () {
      for (let off = 0; off < bytes.length; off += cb) yield bytes.subarray(off, Math.min(off + cb, bytes.length));
    });
  }

  async putFile(path: string): Promise<StoredBlob> {
    if (typeof path !== 'string' || path === '') throw new TypeError('PostgresBlobBackend.putFile: path must be a non-empty string');
    // the name is known only after a first pass; the second pass writes the rows
    const hash = createHash('sha256');
    let size = 0;
    for (const c of fileChunks(path, this.chunkBytes)) {
      hash.update(c);
      size += c.length;
    }
    return this.store(hash.digest('hex'), size, () => fileChunks(path, this.chunkBytes));
  }

  async has(sha256: string): Promise<boolean> {
    checkSha('PostgresBlobBackend.has', sha256);
    return (await this.db.get('SELECT 1 AS one FROM blobs WHERE sha256 = ?', [sha256])) !== undefined;
  }

  private async meta(fn: string, sha256: string): Promise<{ size: number; chunkBytes: number }> {
    checkSha(fn, sha256);
    const r = await this.db.get('SELECT size, chunk_bytes FROM blobs WHERE sha256 = ?', [sha256]);
    if (!r) throw new RangeError(`${fn}: no blob ${sha256}`);
    return { size: Number(r.size), chunkBytes: Number(r.chunk_bytes) };
  }

  async size(sha256: string): Promise<number> {
    return (await this.meta('PostgresBlobBackend.size', sha256)).size;
  }

  readChunks(sha256: string, offset = 0, chunkBytes = MAX_CHUNK_BYTES): AsyncGenerator<BlobChunk> {
    const size = checkChunkBytes('PostgresBlobBackend.readChunks', chunkBytes);
    const raw = async function* (this: PostgresBlobBackend): AsyncGenerator<BlobChunk> {
      const m = await this.meta('PostgresBlobBackend.readChunks', sha256);
      if (!Number.isInteger(offset) || offset < 0 || offset > m.size) throw new RangeError(`PostgresBlobBackend.readChunks: offset ${offset} is outside [0, ${m.size}]`);
      let row: { idx: number; data: Uint8Array } | undefined;
      for (let pos = offset; pos < m.size; ) {
        const idx = Math.floor(pos / m.chunkBytes);
        if (!row || row.idx !== idx) {
          const r = await this.db.get('SELECT data FROM blob_chunks WHERE sha256 = ? AND idx = ?', [sha256, idx]);
          if (!r) throw new RangeError(`PostgresBlobBackend.readChunks: blob ${sha256} is missing its chunk ${idx}`);
          row = { idx, data: r.data as Uint8Array };
        }
        const from = pos - idx * m.chunkBytes;
        const data = Uint8Array.from(row.data.subarray(from, Math.min(from + size, row.data.length)));
        if (data.length === 0) throw new RangeError(`PostgresBlobBackend.readChunks: blob ${sha256}'s chunk ${idx} is shorter than its size says`);
        yield { offset: pos, data, total: m.size };
        pos += data.length;
      }
    };
    return verifiedChunks(sha256, offset, raw.call(this));
  }

  async verify(sha256: string): Promise<boolean> {
    const m = await this.meta('PostgresBlobBackend.verify', sha256);
    const hash = createHash('sha256');
    let seen = 0;
    for (let idx = 0; seen < m.size; idx++) {
      const r = await this.db.get('SELECT data FROM blob_chunks WHERE sha256 = ? AND idx = ?', [sha256, idx]);
      if (!r) return false;
      hash.update(r.data as Uint8Array);
      seen += (r.data as Uint8Array).length;
    }
    return seen === m.size && hash.digest('hex') === sha256;
  }
}
