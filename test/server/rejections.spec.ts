import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { firstValueFrom } from 'rxjs';
import { filter } from 'rxjs/operators';
import { authFor, enrollRequestFor, unaryCall } from '../../client/index.js';
import { seal } from '../../privacy/box.js';
import { encodeUpdate, loadProtos, MAX_CHUNK_BYTES } from '../../proto/index.js';
import type { CoordinatorClient } from '../../proto/generated/fedtune/v1/Coordinator.js';
import type { CheckInResponse__Output } from '../../proto/generated/fedtune/v1/CheckInResponse.js';
import type { EnrollResponse__Output } from '../../proto/generated/fedtune/v1/EnrollResponse.js';
import type { UpdateHeader } from '../../proto/generated/fedtune/v1/UpdateHeader.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from './fixtures.js';

const M = 'fedtune.v1.Coordinator';

interface Raw {
  deviceId: string;
  sign: nacl.SignKeyPair;
  box: nacl.BoxKeyPair;
  programKey: Uint8Array;
}

function statusOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  return p.then(
    () => ({ code: grpc.status.OK, details: '' }),
    (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
  );
}

describe('server: every bad input gets its status and leaves the global adapter unchanged', function () {
  this.timeout(120_000);
  let running: RunningCoordinator;
  let client: CoordinatorClient;
  let initial: Float32Array;
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-rej-'));

  before(async () => {
    running = await startCoordinator({
      dataDir: dir,
      port: 0,
      programs: [
        smallProgram('oz', { cohortSize: 50, minUpdates: 50, overSelect: 2, dp: { clipNorm: 0.5 } }),
        smallProgram('quick', { cohortSize: 2, minUpdates: 2, roundDeadlineMs: 400, retryDelayMs: 100 }),
      ],
    });
    const { fedtune } = loadProtos();
    client = new fedtune.fedtune.v1.Coordinator(running.address, grpc.credentials.createInsecure());
    initial = running.coordinator.program('oz').runner.current().global;
  });
  after(async () => {
    client.close();
    await running.shutdown(500);
  });
  afterEach(() => {
    const cur = running.coordinator.program('oz').runner.current();
    assert.equal(cur.version, 0);
    assert.deepEqual(cur.global, initial);
  });

  const enroll = async (programId = 'oz', token = TOKEN): Promise<Raw> => {
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair();
    const res = await unaryCall<EnrollResponse__Output>((o, cb) => client.Enroll(enrollRequestFor(programId, token, sign, box.publicKey), o, cb), 5000);
    return { deviceId: res.deviceId, sign, box, programKey: Uint8Array.from(res.programBoxPublicKey) };
  };
  const checkIn = (d: Raw, programId = 'oz', keys = d.sign): Promise<CheckInResponse__Output> => {
    const req = { programId, adapterVersion: 0 };
    return unaryCall<CheckInResponse__Output>((o, cb) => client.CheckIn({ ...req, auth: authFor(`${M}/CheckIn`, req, d.deviceId, keys) }, o, cb), 5000);
  };
  /** Send header + chunks exactly as given. */
  const upload = (d: Raw, header: Omit<UpdateHeader, 'auth'>, chunks: Uint8Array[]): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const call = client.UploadUpdate({ deadline: Date.now() + 20_000 }, (err, res) => (err ? reject(err) : resolve(res)));
      call.write({ header: { ...header, auth: authFor(`${M}/UploadUpdate`, { header }, d.deviceId, d.sign) } });
      for (const c of chunks) call.write({ data: Buffer.from(c) });
      call.end();
    });
  const sealedUpload = async (d: Raw, values: Float32Array, over: Partial<UpdateHeader> = {}, roundId?: string) => {
    const work = (await checkIn(d)).work;
    assert.ok(work, 'the device should get work');
    const sealed = seal(encodeUpdate(values), d.programKey, d.box);
    const header = { programId: 'oz', roundId: roundId ?? work.roundId, numExamples: 8, payloadBytes: sealed.length, payloadSha256: createHash('sha256').update(sealed).digest('hex'), encoding: 'f32', ...over };
    return statusOf(upload(d, header, [sealed]));
  };
  const n = (): number => running.coordinator.program('oz').updateLength;

  it('enrolment: wrong token, unknown program, bad key sizes', async () => {
    const wrong = await statusOf(enroll('oz', 'not-the-token'));
    assert.equal(wrong.code, grpc.status.PERMISSION_DENIED);
    const unknown = await statusOf(enroll('nope'));
    assert.deepEqual(unknown, wrong, 'an unknown program and a wrong token are answered alike');
    assert.match(unknown.details, /program id or the enrolment token is wrong/);
    const bad = await statusOf(unaryCall((o, cb) => client.Enroll({ programId: 'oz', enrolmentToken: TOKEN, signPublicKey: Buffer.alloc(5), boxPublicKey: Buffer.alloc(32) }, o, cb), 5000));
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /sign_public_key must be 32 bytes/);
  });

  it('unknown device, bad signature, replay, stale timestamp, wrong program: UNAUTHENTICATED / PERMISSION_DENIED', async () => {
    const d = await enroll();
    const ghost = { ...d, deviceId: 'dev-ghost' };
    assert.match((await statusOf(checkIn(ghost))).details, /unknown device/);
    const forged = await statusOf(checkIn(d, 'oz', nacl.sign.keyPair()));
    assert.equal(forged.code, grpc.status.UNAUTHENTICATED);
    assert.match(forged.details, /does not verify/);
    const req = { programId: 'oz', adapterVersion: 0 };
    const signed = { ...req, auth: authFor(`${M}/CheckIn`, req, d.deviceId, d.sign) };
    assert.equal((await statusOf(unaryCall((o, cb) => client.CheckIn(signed, o, cb), 5000))).code, grpc.status.OK);
    const replay = await statusOf(unaryCall((o, cb) => client.CheckIn(signed, o, cb), 5000));
    assert.equal(replay.code, grpc.status.UNAUTHENTICATED);
    assert.match(replay.details, /replayed/);
    const staleAuth = { ...authFor(`${M}/CheckIn`, req, d.deviceId, d.sign) };
    const stale = await statusOf(unaryCall((o, cb) => client.CheckIn({ ...req, auth: { ...staleAuth, timestampMs: Date.now() - 3_600_000 } }, o, cb), 5000));
    assert.equal(stale.code, grpc.status.UNAUTHENTICATED);
    const unsigned = await statusOf(unaryCall((o, cb) => client.CheckIn(req, o, cb), 5000));
    assert.match(unsigned.details, /not signed/);
    const other = await statusOf(checkIn(d, 'quick'));
    assert.equal(other.code, grpc.status.PERMISSION_DENIED);
  });

  it('a signed WatchRounds replayed as a CheckIn is refused (signatures name their method)', async () => {
    const d = await enroll();
    const watch = { programId: 'oz', afterRound: 0 };
    const captured = { ...watch, auth: authFor(`${M}/WatchRounds`, watch, d.deviceId, d.sign) };
    const replayed = await statusOf(unaryCall((o, cb) => client.CheckIn({ programId: 'oz', adapterVersion: 0, auth: captured.auth }, o, cb), 5000));
    assert.equal(replayed.code, grpc.status.UNAUTHENTICATED);
    assert.match(replayed.details, /does not verify/);
  });

  it('wrong round, wrong shape, NaN, over the clip norm, unknown encoding: the right status and sentence', async () => {
    const wrongRound = await sealedUpload(await enroll(), new Float32Array(n()), {}, 'oz.r9.a1');
    assert.equal(wrongRound.code, grpc.status.FAILED_PRECONDITION);
    assert.match(wrongRound.details, /not this program's open round/);
    const short = await sealedUpload(await enroll(), new Float32Array(n() - 1));
    assert.equal(short.code, grpc.status.INVALID_ARGUMENT);
    assert.match(short.details, /payload_bytes/);
    const nan = new Float32Array(n());
    nan[7] = Number.NaN;
    const bad = await sealedUpload(await enroll(), nan);
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.match(bad.details, /non-finite value \(NaN\) at index 7/);
    const big = new Float32Array(n()).fill(0.01); // norm 0.01·√n ≫ 0.5
    const over = await sealedUpload(await enroll(), big);
    assert.equal(over.code, grpc.status.INVALID_ARGUMENT);
    assert.match(over.details, /exceeds the round's clip norm 0.5/);
    const enc = await sealedUpload(await enroll(), new Float32Array(n()), { encoding: 'bf16' });
    assert.equal(enc.code, grpc.status.INVALID_ARGUMENT);
    assert.match(enc.details, /unknown update encoding "bf16"/);
  });

  it('tampered ciphertext, a lying hash, and a second upload', async () => {
    const d = await enroll();
    const work = (await checkIn(d)).work!;
    const sealed = seal(encodeUpdate(new Float32Array(n())), d.programKey, d.box);
    sealed[100] ^= 1;
    const header = { programId: 'oz', roundId: work.roundId, numExamples: 8, payloadBytes: sealed.length, payloadSha256: createHash('sha256').update(sealed).digest('hex'), encoding: 'f32' };
    const tampered = await statusOf(upload(d, header, [sealed]));
    assert.equal(tampered.code, grpc.status.INVALID_ARGUMENT);
    assert.match(tampered.details, /could not be decrypted/);
    const e = await enroll();
    const w2 = (await checkIn(e)).work!;
    const ok = seal(encodeUpdate(new Float32Array(n())), e.programKey, e.box);
    const lying = await statusOf(upload(e, { ...header, roundId: w2.roundId, payloadBytes: ok.length, payloadSha256: '0'.repeat(64) }, [ok]));
    assert.match(lying.details, /does not match payload_sha256/);
    // a valid upload is accepted once (the round needs 50, so the global adapter does not move) …
    const f = await enroll();
    const w3 = (await checkIn(f)).work!;
    const good = seal(encodeUpdate(new Float32Array(n())), f.programKey, f.box);
    const goodHeader = { ...header, roundId: w3.roundId, payloadBytes: good.length, payloadSha256: createHash('sha256').update(good).digest('hex') };
    assert.equal((await statusOf(upload(f, goodHeader, [good]))).code, grpc.status.OK);
    // … and refused the second time; a check-in now says it already took part
    const again = await statusOf(upload(f, goodHeader, [good]));
    assert.equal(again.code, grpc.status.ALREADY_EXISTS);
    assert.match((await checkIn(f)).later?.reason ?? '', /already took part/);
  });

  it('oversized streams: more bytes than announced, and a chunk over the message limit', async () => {
    const d = await enroll();
    const work = (await checkIn(d)).work!;
    const sealed = seal(encodeUpdate(new Float32Array(n())), d.programKey, d.box);
    const header = { programId: 'oz', roundId: work.roundId, numExamples: 8, payloadBytes: sealed.length, payloadSha256: createHash('sha256').update(sealed).digest('hex'), encoding: 'f32' };
    const more = await statusOf(upload(d, header, [sealed, new Uint8Array(10)]));
    assert.equal(more.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(more.details, /more than the \d+ bytes its header announced/);
    const e = await enroll();
    const w2 = (await checkIn(e)).work!;
    const huge = await statusOf(upload(e, { ...header, roundId: w2.roundId }, [new Uint8Array(MAX_CHUNK_BYTES + 200_000)]));
    assert.equal(huge.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  it('a late update, after its round closed, gets DEADLINE_EXCEEDED', async () => {
    const d = await enroll('quick');
    const runner = running.coordinator.program('quick').runner;
    const req = { programId: 'quick', adapterVersion: 0 };
    let work: CheckInResponse__Output['work'] = null;
    for (let tries = 0; !work; tries++) {
      assert.ok(tries < 20, 'no round of "quick" opened for this device');
      // listen before asking, so a round that opens in between is not missed
      const opened = firstValueFrom(runner.events$.pipe(filter((e) => e.state === 'OPEN')), { defaultValue: undefined });
      const res = await unaryCall<CheckInResponse__Output>((o, cb) => client.CheckIn({ ...req, auth: authFor(`${M}/CheckIn`, req, d.deviceId, d.sign) }, o, cb), 5000);
      work = res.work;
      if (!work) await opened;
    }
    // the 400 ms round fails for want of updates (watch replays the failure if it already happened)
    const roundId = work.roundId;
    await firstValueFrom(runner.watch(0).pipe(filter((e) => e.roundId === roundId && e.state === 'FAILED')));
    const p = running.coordinator.program('quick');
    const sealed = seal(encodeUpdate(new Float32Array(p.updateLength)), d.programKey, d.box);
    const header = { programId: 'quick', roundId: work.roundId, numExamples: 8, payloadBytes: sealed.length, payloadSha256: createHash('sha256').update(sealed).digest('hex'), encoding: 'f32' };
    const late = await statusOf(upload(d, header, [sealed]));
    assert.equal(late.code, grpc.status.DEADLINE_EXCEEDED);
    assert.match(late.details, /closed; the update came too late/);
    assert.equal(p.runner.current().version, 0);
  });
});
