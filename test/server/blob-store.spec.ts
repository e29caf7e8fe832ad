import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobStore, MAX_CHUNK_BYTES } from '../../server/index.js';
import { MODEL } from '../helpers.js';

describe('server/blob-store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-blobs-'));
  const store = new BlobStore(dir);

  it('names blobs by SHA-256, stores them once, and reads them back in chunks from any offset', () => {
    const bytes = Uint8Array.from({ length: 3 * MAX_CHUNK_BYTES + 123 }, (_, i) => (i * 31) & 0xff);
    const ref = store.put(bytes);
    assert.equal(ref.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.deepEqual(store.put(bytes), ref);
    assert.equal(store.size(ref.sha256), bytes.length);
    const chunks = [...store.readChunks(ref.sha256, 0, 500_000)];
    assert.ok(chunks.every((c) => c.data.length <= 500_000));
    assert.deepEqual(Buffer.concat(chunks.map((c) => c.data)), Buffer.from(bytes));
    const resumed = [...store.readChunks(ref.sha256, 2_000_001, 10 * MAX_CHUNK_BYTES)];
    assert.ok(resumed.every((c) => c.data.length <= MAX_CHUNK_BYTES), 'chunks are capped at 1 MiB');
    assert.deepEqual(Buffer.concat(resumed.map((c) => c.data)), Buffer.from(bytes.subarray(2_000_001)));
    assert.equal([...store.readChunks(ref.sha256, bytes.length)].length, 0);
    assert.ok(readdirSync(dir).every((f) => !f.endsWith('.partial')));
  });

  it('imports a file by streaming and verifies stored bytes', () => {
    const ref = store.putFile(MODEL.bin);
    assert.equal(ref.sha256, 'b0a507e7ad0f626624f17112325e66691f9076d622e1d3274d103d00299f2696');
    assert.ok(store.verify(ref.sha256));
    const bad = store.put(new Uint8Array([1, 2, 3]));
    writeFileSync(join(dir, bad.sha256), Buffer.from([1, 2, 4]));
    assert.equal(store.verify(bad.sha256), false);
  });

  it('refuses names that are not a SHA-256 (no path traversal) and offsets outside the blob', () => {
    assert.throws(() => store.has('../../etc/passwd'), /is not a hex SHA-256/);
    assert.throws(() => [...store.readChunks('a'.repeat(64))], /no blob/);
    const ref = store.put(new Uint8Array(10));
    assert.throws(() => [...store.readChunks(ref.sha256, 11)], /offset 11 is outside \[0, 10\]/);
  });

  it('removes partial files left by a crash when it opens', () => {
    writeFileSync(join(dir, 'x.partial'), 'half');
    new BlobStore(dir);
    assert.ok(readdirSync(dir).every((f) => !f.endsWith('.partial')));
  });
});
