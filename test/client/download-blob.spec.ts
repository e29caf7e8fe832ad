import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { downloadBlob } from '../../client/index.js';
import { loadProtos } from '../../proto/index.js';
import type { CoordinatorClient } from '../../proto/generated/fedtune/v1/Coordinator.js';
import { BlobStore, downloadBlobHandler, MAX_CHUNK_BYTES, type Authorize } from '../../server/index.js';

/** A real coordinator socket serving only DownloadBlob (the rest of the service is the next issue). */
async function serve(store: BlobStore, authorize: Authorize): Promise<{ client: CoordinatorClient; close: () => Promise<void> }> {
  const { fedtune } = loadProtos();
  const server = new grpc.Server();
  const unimplemented = (_: unknown, cb: (e: grpc.ServiceError | null) => void) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'not served in this test' } as grpc.ServiceError);
  server.addService(fedtune.fedtune.v1.Coordinator.service, {
    DownloadBlob: downloadBlobHandler(store, authorize),
    Enroll: unimplemented,
    GetProgram: unimplemented,
    CheckIn: unimplemented,
    UploadUpdate: unimplemented,
    WatchRounds: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'not served in this test' }),
  } as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const client = new fedtune.fedtune.v1.Coordinator(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return { client, close: () => new Promise<void>((r) => (client.close(), server.tryShutdown(() => r()))) };
}

describe('client/download-blob over a real socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-dl-'));
  const store = new BlobStore(join(dir, 'blobs'));
  const blob = Uint8Array.from({ length: 2 * MAX_CHUNK_BYTES + 777 }, (_, i) => (i * 7 + (i >> 11)) & 0xff);
  const ref = store.put(blob);
  let srv: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    srv = await serve(store, (req) => (req.auth?.deviceId === 'banned' ? { code: grpc.status.UNAUTHENTICATED, details: 'device banned is not enrolled' } : null));
  });
  after(() => srv.close());

  it('downloads a multi-chunk blob and verifies its SHA-256', async () => {
    const dest = join(dir, 'a.bin');
    const seen: number[] = [];
    const r = await downloadBlob(srv.client, ref.sha256, dest, { onProgress: (have) => seen.push(have) });
    assert.equal(r.bytes, blob.length);
    assert.equal(r.resumedFrom, 0);
    assert.equal(createHash('sha256').update(readFileSync(dest)).digest('hex'), ref.sha256);
    assert.equal(seen.length, 3, 'three chunks of at most 1 MiB');
  });

  it('resumes from a partial file, fetching only the rest', async () => {
    const dest = join(dir, 'b.bin');
    writeFileSync(`${dest}.partial`, blob.subarray(0, 1_234_567));
    const seen: number[] = [];
    const r = await downloadBlob(srv.client, ref.sha256, dest, { onProgress: (have) => seen.push(have), maxChunkBytes: 500_000 });
    assert.equal(r.resumedFrom, 1_234_567);
    assert.equal(seen[0], 1_234_567 + 500_000);
    assert.deepEqual(readFileSync(dest), Buffer.from(blob));
  });

  it('discards a corrupt partial file instead of accepting a blob that fails its hash', async () => {
    const dest = join(dir, 'c.bin');
    writeFileSync(`${dest}.partial`, Buffer.alloc(1000, 9));
    await assert.rejects(downloadBlob(srv.client, ref.sha256, dest), /do not hash to/);
    assert.equal(existsSync(`${dest}.partial`), false);
    assert.equal(existsSync(dest), false);
    await downloadBlob(srv.client, ref.sha256, dest);
    assert.deepEqual(readFileSync(dest), Buffer.from(blob));
  });

  it('answers bad requests with the right status and a sentence', async () => {
    const code = async (p: Promise<unknown>): Promise<{ code: number; details: string }> => {
      try {
        await p;
        return { code: -1, details: '' };
      } catch (e) {
        return { code: (e as grpc.ServiceError).code, details: (e as grpc.ServiceError).details };
      }
    };
    assert.deepEqual(await code(downloadBlob(srv.client, 'f'.repeat(64), join(dir, 'x.bin'))), { code: grpc.status.NOT_FOUND, details: `no blob ${'f'.repeat(64)} on this coordinator` });
    const banned = { deviceId: 'banned', nonce: 'aa'.repeat(16), timestampMs: Date.now(), signature: Buffer.alloc(64) };
    assert.deepEqual(await code(downloadBlob(srv.client, ref.sha256, join(dir, 'y.bin'), { auth: banned })), { code: grpc.status.UNAUTHENTICATED, details: 'device banned is not enrolled' });
    const raw = srv.client.DownloadBlob({ sha256: ref.sha256, offset: blob.length + 1 }, { deadline: Date.now() + 5000 });
    const err = await new Promise<grpc.ServiceError>((res) => raw.on('error', res));
    assert.equal(err.code, grpc.status.OUT_OF_RANGE);
    assert.throws(() => downloadBlob(srv.client, 'nope', join(dir, 'z.bin')), /not a hex SHA-256/);
  });
});
