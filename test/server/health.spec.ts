import { enrollRequestFor } from '../../client/rpc.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { authFor, unaryCall } from '../../client/index.js';
import { seal } from '../../privacy/box.js';
import { encodeUpdate, loadProtos } from '../../proto/index.js';
import type { CheckInResponse__Output } from '../../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../../proto/generated/fedtune/v1/Coordinator.js';
import type { EnrollResponse__Output } from '../../proto/generated/fedtune/v1/EnrollResponse.js';
import type { UpdateChunk } from '../../proto/generated/fedtune/v1/UpdateChunk.js';
import type { UploadUpdateResponse__Output } from '../../proto/generated/fedtune/v1/UploadUpdateResponse.js';
import type { HealthClient } from '../../proto/generated/grpc/health/v1/Health.js';
import type { HealthCheckResponse__Output } from '../../proto/generated/grpc/health/v1/HealthCheckResponse.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from './fixtures.js';

const M = 'fedtune.v1.Coordinator';

describe('server: grpc.health.v1 streams status changes, and shutdown drains', function () {
  this.timeout(60_000);
  let running: RunningCoordinator;
  let health: HealthClient;
  let client: CoordinatorClient;

  beforeEach(async () => {
    running = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'fedtune-health-')), port: 0, drainMs: 1000, programs: [smallProgram('oz', { cohortSize: 50, minUpdates: 50, overSelect: 2 })] });
    const { fedtune, health: h } = loadProtos();
    health = new h.grpc.health.v1.Health(running.address, grpc.credentials.createInsecure());
    client = new fedtune.fedtune.v1.Coordinator(running.address, grpc.credentials.createInsecure());
  });
  afterEach(async () => {
    health.close();
    client.close();
    await running.shutdown(500);
  });

  /** Enrol a hand-made device on program oz. */
  const enroll = (sign: nacl.SignKeyPair, boxPublicKey: Uint8Array): Promise<EnrollResponse__Output> =>
    unaryCall<EnrollResponse__Output>((o, cb) => client.Enroll(enrollRequestFor('oz', TOKEN, sign, boxPublicKey), o, cb), 5000);

  const check = (service: string): Promise<HealthCheckResponse__Output> => unaryCall<HealthCheckResponse__Output>((o, cb) => health.Check({ service }, o, cb), 5000);

  /** A Watch call, its messages as they come, and a promise of how it ended. */
  const watch = (service: string) => {
    const call = health.Watch({ service });
    const seen: string[] = [];
    const waiters: { ready: () => boolean; resolve: () => void }[] = [];
    call.on('data', (m: HealthCheckResponse__Output) => {
      seen.push(m.status);
      for (const w of waiters.filter((x) => x.ready())) w.resolve();
    });
    const ended = new Promise<{ code: number; seenAtEnd: string[] }>((resolve) => call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, seenAtEnd: [...seen] })));
    call.on('error', () => {}); // the status event carries it
    const until = (ready: () => boolean, what: string): Promise<void> =>
      ready()
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            waiters.push({ ready, resolve });
            void ended.then((s) => reject(new Error(`the Watch stream ended (code ${s.code}, after ${JSON.stringify(s.seenAtEnd)}) before ${what}`)));
          });
    /** Resolves once `status` has been seen; rejects if the stream ends first. */
    const next = (status: string): Promise<void> => until(() => seen.includes(status), status);
    /** Resolves once `n` messages have been seen; rejects if the stream ends first. */
    const count = (n: number): Promise<void> => until(() => seen.length >= n, `${n} messages`);
    return { call, seen, ended, next, count };
  };

  it('Check: SERVING for the server and the Coordinator service, NOT_FOUND for an unknown service', async () => {
    assert.equal((await check('')).status, 'SERVING');
    assert.equal((await check(M)).status, 'SERVING');
    const unknown = await check('no.such.Service').then(
      () => grpc.status.OK,
      (e: grpc.ServiceError) => e.code,
    );
    assert.equal(unknown, grpc.status.NOT_FOUND);
  });

  it('Watch streams changes until the client cancels (it does not answer once and close)', async () => {
    const w = watch(M);
    await w.next('SERVING');
    running.health.setStatus(M, 'NOT_SERVING');
    await w.next('NOT_SERVING');
    running.health.setStatus(M, 'SERVING');
    await w.count(3);
    assert.deepEqual(w.seen, ['SERVING', 'NOT_SERVING', 'SERVING']);
    w.call.cancel();
    assert.equal((await w.ended).code, grpc.status.CANCELLED);
    // an unknown service: SERVICE_UNKNOWN, and the stream stays open
    const u = watch('no.such.Service');
    await u.next('SERVICE_UNKNOWN');
    u.call.cancel();
    assert.equal((await u.ended).code, grpc.status.CANCELLED);
  });

  it('shutdown: watchers hear NOT_SERVING before their stream ends OK, Check says NOT_SERVING while draining, and an upload in flight still completes', async () => {
    const whole = watch('');
    const svc = watch(M);
    await Promise.all([whole.next('SERVING'), svc.next('SERVING')]);
    // a device's upload is in flight (header sent, payload not yet) when shutdown begins
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair();
    const e = await enroll(sign, box.publicKey);
    const ci = { programId: 'oz', adapterVersion: 0 };
    const work = (await unaryCall<CheckInResponse__Output>((o, cb) => client.CheckIn({ ...ci, auth: authFor(`${M}/CheckIn`, ci, e.deviceId, sign) }, o, cb), 5000)).work;
    assert.ok(work);
    const sealed = seal(encodeUpdate(new Float32Array(running.coordinator.program('oz').updateLength)), Uint8Array.from(e.programBoxPublicKey), box);
    const header = { programId: 'oz', roundId: work.roundId, numExamples: 8, payloadBytes: sealed.length, payloadSha256: createHash('sha256').update(sealed).digest('hex'), encoding: 'f32' };
    let upload!: grpc.ClientWritableStream<UpdateChunk>;
    const answered = new Promise<{ code: number; res?: UploadUpdateResponse__Output }>((resolve) => {
      upload = client.UploadUpdate({ deadline: Date.now() + 20_000 }, (err, res) => resolve(err ? { code: err.code } : { code: grpc.status.OK, res: res as UploadUpdateResponse__Output }));
    });
    upload.write({ header: { ...header, auth: authFor(`${M}/UploadUpdate`, { header }, e.deviceId, sign) } });
    const closed = running.shutdown(10_000);
    await Promise.all([whole.next('NOT_SERVING'), svc.next('NOT_SERVING')]);
    assert.equal((await check('')).status, 'NOT_SERVING', 'Check during the drain');
    // the drain is over when the watches end: from then on new calls are refused...
    for (const w of [whole, svc]) {
      const end = await w.ended;
      assert.equal(end.code, grpc.status.OK);
      assert.deepEqual(end.seenAtEnd, ['SERVING', 'NOT_SERVING']);
    }
    const refused = await check('').then(
      () => grpc.status.OK,
      (err: grpc.ServiceError) => err.code,
    );
    assert.equal(refused, grpc.status.UNAVAILABLE, 'no new calls once draining ends');
    // ...but the upload that was in flight still completes
    upload.write({ data: Buffer.from(sealed) });
    upload.end();
    const up = await answered;
    assert.equal(up.code, grpc.status.OK, 'the upload in flight when shutdown began completes');
    assert.ok(Number(up.res?.bytesReceived) > 0);
    await closed;
    const after = await check('').then(
      () => grpc.status.OK,
      (err: grpc.ServiceError) => err.code,
    );
    assert.equal(after, grpc.status.UNAVAILABLE, 'the port is closed after shutdown');
  });
});
