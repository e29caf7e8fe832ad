/**
 * Blob backends — the directory (today's BlobStore) and chunked rows in PostgreSQL (and in SQLite,
 * through the same executor interface): content addresses match published SHA-256 vectors,
 * reads from every offset reassemble the bytes, corruption is detected, concurrent puts of the
 * same content store it once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BlobIntegrityError,
  DirectoryBlobBackend,
  openExecutor,
  PostgresBlobBackend,
  type BlobBackend,
  type BlobChunk,
  type SqlExecutor,
} from '../../../server/storage/index.js';
import { describeEngines } from './engines.js';

// FIPS 180-2 / NIST test vectors
const SHA_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const SHA_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA_448 = '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1';

const scratch = mkdtempSync(join(tmpdir(), 'fedtune-blobs-'));

async function collect(chunks: AsyncIterable<BlobChunk>): Promise<BlobChunk[]> {
  const out: BlobChunk[] = [];
  for await (const c of chunks) out.push(c);
  return out;
}

const concat = (parts: readonly Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));

/** The checks every backend passes; `corrupt` damages one stored byte of a blob. */
function conformance(open: () => Promise<{ blobs: BlobBackend; corrupt(sha256: string): Promise<void>; done(): Promise<void> }>): void {
  let b: Awaited<ReturnType<typeof open>>;
  beforeEach(async () => {
    b = await open();
  });
  afterEach(async () => {
    await b.done();
  });

  it('names blobs by their SHA-256 (published vectors) and stores them idempotently', async () => {
    assert.deepEqual(await b.blobs.put(new TextEncoder().encode('abc')), { sha256: SHA_ABC, size: 3 });
    assert.deepEqual(await b.blobs.put(new TextEncoder().encode('abc')), { sha256: SHA_ABC, size: 3 });
    assert.deepEqual(await b.blobs.put(new Uint8Array(0)), { sha256: SHA_EMPTY, size: 0 });
    assert.deepEqual(await collect(b.blobs.readChunks(SHA_EMPTY)), []);
    const file = join(scratch, `448-${Math.random()}.txt`);
    writeFileSync(file, 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq');
    assert.deepEqual(await b.blobs.putFile(file), { sha256: SHA_448, size: 56 });
    assert.equal(await b.blobs.has(SHA_448), true);
    assert.equal(await b.blobs.size(SHA_448), 56);
    assert.equal(await b.blobs.verify(SHA_448), true);
    const tail = concat((await collect(b.blobs.readChunks(SHA_448, 50, 4))).map((c) => c.data));
    assert.equal(new TextDecoder().decode(tail), 'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'.slice(50));
  });

  it('reads from any offset in chunks that reassemble the stored bytes', async () => {
    const bytes = Uint8Array.from(randomBytes(300));
    const { sha256 } = await b.blobs.put(bytes);
    for (const offset of [0, 1, 6, 7, 8, 149, 299, 300])
      for (const chunkBytes of [1, 7, 13, 4096]) {
        if (chunkBytes === 1 && offset < 250) continue; // keep it quick
        const chunks = await collect(b.blobs.readChunks(sha256, offset, chunkBytes));
        let pos = offset;
        for (const c of chunks) {
          assert.equal(c.offset, pos);
          assert.equal(c.total, 300);
          assert.ok(c.data.length >= 1 && c.data.length <= chunkBytes);
          pos += c.data.length;
        }
        assert.deepEqual(concat(chunks.map((c) => c.data)), bytes.subarray(offset), `offset ${offset}, chunks of ${chunkBytes}`);
      }
  });

  it('refuses absent blobs, bad names and offsets past the end', async () => {
    const { sha256 } = await b.blobs.put(Uint8Array.of(1, 2, 3));
    assert.equal(await b.blobs.has('0'.repeat(64)), false);
    await assert.rejects(b.blobs.size('0'.repeat(64)), RangeError);
    await assert.rejects(collect(b.blobs.readChunks('0'.repeat(64))), RangeError);
    await assert.rejects(b.blobs.has('not-a-sha'), RangeError);
    await assert.rejects(collect(b.blobs.readChunks(sha256, 4)), RangeError);
    await assert.rejects(collect(b.blobs.readChunks(sha256, -1)), RangeError);
    assert.throws(() => b.blobs.readChunks(sha256, 0, 0), RangeError);
  });

  it('detects a corrupted blob: verify is false and a full read fails at its end', async () => {
    const { sha256 } = await b.blobs.put(Uint8Array.from(randomBytes(100)));
    await b.corrupt(sha256);
    assert.equal(await b.blobs.verify(sha256), false);
    await assert.rejects(collect(b.blobs.readChunks(sha256, 0, 16)), BlobIntegrityError);
  });
}

describe('server/storage blobs · directory', () => {
  conformance(async () => {
    const dir = mkdtempSync(join(scratch, 'dir-'));
    const blobs = new DirectoryBlobBackend(dir);
    return {
      blobs,
      async corrupt(sha256) {
        const bytes = Uint8Array.from(Buffer.from(await collectRaw(blobs, sha256)));
        bytes[bytes.length >> 1] ^= 0xff;
        writeFileSync(join(dir, sha256), bytes);
      },
      async done() {},
    };
  });
});

/** Bytes read past the integrity check (only the directory test needs them before corrupting). */
async function collectRaw(blobs: DirectoryBlobBackend, sha256: string): Promise<Uint8Array> {
  return concat([...blobs.store.readChunks(sha256)].map((c) => c.data));
}

describeEngines('server/storage blobs · chunked rows', (engine) => {
  const rowBackend = async (chunkBytes: number): Promise<{ db: SqlExecutor; blobs: PostgresBlobBackend }> => {
    const db = await openExecutor(await engine.location());
    return { db, blobs: new PostgresBlobBackend(db, chunkBytes) };
  };

  conformance(async () => {
    const { db, blobs } = await rowBackend(7);
    return {
      blobs,
      async corrupt(sha256) {
        const row = await db.get('SELECT data FROM blob_chunks WHERE sha256 = ? AND idx = 3', [sha256]);
        const data = Uint8Array.from(row?.data as Uint8Array);
        data[0] ^= 0xff;
        await db.run('UPDATE blob_chunks SET data = ? WHERE sha256 = ? AND idx = 3', [data, sha256]);
      },
      done: () => db.close(),
    };
  });

  it('stores a blob as ceil(size / chunkBytes) rows, once however many (replicas) put it at the same time', async () => {
    const location = await engine.location();
    const first = await openExecutor(location);
    const second = engine.name === 'postgres' ? await openExecutor(location) : first;
    try {
      const replicas = [new PostgresBlobBackend(first, 64), new PostgresBlobBackend(second, 64)];
      const bytes = Uint8Array.from(randomBytes(1000));
      const puts = await Promise.all(Array.from({ length: 6 }, (_, i) => replicas[i % 2].put(bytes)));
      assert.equal(new Set(puts.map((p) => p.sha256)).size, 1);
      assert.equal(Number((await first.get('SELECT COUNT(*) AS n FROM blob_chunks'))?.n), Math.ceil(1000 / 64));
      assert.equal(Number((await second.get('SELECT COUNT(*) AS n FROM blobs'))?.n), 1);
      assert.deepEqual(concat((await collect(replicas[1].readChunks(puts[0].sha256))).map((c) => c.data)), bytes);
    } finally {
      await first.close();
      if (second !== first) await second.close();
    }
  });
});
