/**
 * The written contract, checked from the outside: a client that builds protobuf bytes by hand
 * with standard proto3 rules (defaults omitted) and signs them as proto/CONTRACT.md says, against
 * a real coordinator over loopback.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from '../server/fixtures.js';
import { bytes, enrollRequest, int, msg, parseFields, RawClient, rawField, signed, str, varint } from './raw-wire.js';

const CHECK_IN = '/fedtune.v1.Coordinator/CheckIn';

describe('proto: the contract as a standard proto3 client sees it', function () {
  this.timeout(60_000);
  let running: RunningCoordinator;
  let v4: RawClient;
  let v6: RawClient;
  let startedAt: number;

  before(async () => {
    startedAt = Date.now();
    running = await startCoordinator({
      dataDir: mkdtempSync(join(tmpdir(), 'fedtune-contract-')),
      host: '[::]',
      port: 0,
      enrolThrottle: { perPeer: 4, global: 1000, windowMs: 60_000 },
      programs: [smallProgram('oz', { cohortSize: 50, minUpdates: 50 }), smallProgram('quick', { cohortSize: 2, minUpdates: 2 })],
    });
    v4 = new RawClient(`127.0.0.1:${running.port}`);
    v6 = new RawClient(`[::1]:${running.port}`);
  });
  after(async () => {
    v4.close();
    v6.close();
    await running.shutdown(500);
  });

  /** Enrol a fresh key pair over the IPv6 client; returns the device id and keys. */
  const enroll = async (programId = 'oz'): Promise<{ deviceId: string; sign: nacl.SignKeyPair }> => {
    const sign = nacl.sign.keyPair();
    const r = await v6.unary('Enroll', enrollRequest(programId, TOKEN, sign, nacl.box.keyPair().publicKey));
    assert.equal(r.code, grpc.status.OK, r.details);
    return { deviceId: (parseFields(r.messages[0]).get(1) as Buffer).toString('utf8'), sign };
  };

  it('accepts requests serialised with defaults omitted (adapter_version 0, offset 0)', async () => {
    const d = await enroll();
    const checkIn = await v4.unary('CheckIn', signed(CHECK_IN, 'oz', d.deviceId, str(2, 'oz'), d.sign.secretKey));
    assert.equal(checkIn.code, grpc.status.OK, checkIn.details);
    const base = running.coordinator.program('oz').base.blob.sha256;
    const dl = await v4.serverStream('DownloadBlob', signed('/fedtune.v1.Coordinator/DownloadBlob', 'oz', d.deviceId, str(2, base), d.sign.secretKey), (m) => m.length >= 1);
    assert.equal(dl.code, grpc.status.OK, dl.details);
    assert.equal(parseFields(dl.messages[0]).get(2) ?? 0n, 0n, 'the first chunk is at offset 0');
  });

  it('a signature names its method: a signed WatchRounds sent as a CheckIn is refused', async () => {
    const d = await enroll();
    const req = signed('/fedtune.v1.Coordinator/WatchRounds', 'oz', d.deviceId, str(2, 'oz'), d.sign.secretKey);
    const r = await v4.unary('CheckIn', req);
    assert.equal(r.code, grpc.status.UNAUTHENTICATED);
    assert.match(r.details, /does not verify/);
  });

  it('a signature names its program', async () => {
    const d = await enroll();
    const r = await v4.unary('CheckIn', signed(CHECK_IN, 'quick', d.deviceId, str(2, 'oz'), d.sign.secretKey));
    assert.equal(r.code, grpc.status.UNAUTHENTICATED);
  });

  it('a known field with the wrong wire type is INVALID_ARGUMENT naming the field; unknown fields are skipped', async () => {
    const d = await enroll();
    const wrongTop = Buffer.concat([rawField(2, 0, varint(7))]);
    const r1 = await v4.unary('CheckIn', signed(CHECK_IN, 'oz', d.deviceId, wrongTop, d.sign.secretKey));
    assert.equal(r1.code, grpc.status.INVALID_ARGUMENT, r1.details);
    assert.match(r1.details, /program_id/);
    const wrongNested = Buffer.concat([msg(1, str(1, d.deviceId), rawField(3, 2, Buffer.from([1, 0x41]))), str(2, 'oz')]);
    const r2 = await v4.unary('CheckIn', wrongNested);
    assert.equal(r2.code, grpc.status.INVALID_ARGUMENT, r2.details);
    assert.match(r2.details, /auth\.timestamp_ms/);
    const withUnknown = Buffer.concat([str(2, 'oz'), rawField(99, 0, varint(5))]);
    const r3 = await v4.unary('CheckIn', signed(CHECK_IN, 'oz', d.deviceId, withUnknown, d.sign.secretKey));
    assert.equal(r3.code, grpc.status.OK, r3.details);
  });

  it('enrolment needs proof of possession of the signing key, fresh and used once', async () => {
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair().publicKey;
    const noProof = Buffer.concat([str(1, 'oz'), str(2, TOKEN), bytes(3, sign.publicKey), bytes(4, box)]);
    const r1 = await v6.unary('Enroll', noProof);
    assert.equal(r1.code, grpc.status.UNAUTHENTICATED, r1.details);
    assert.match(r1.details, /proof/);
    const r2 = await v6.unary('Enroll', enrollRequest('oz', TOKEN, sign, box, { proofKey: nacl.sign.keyPair().secretKey }));
    assert.equal(r2.code, grpc.status.UNAUTHENTICATED);
    const r3 = await v6.unary('Enroll', enrollRequest('oz', TOKEN, sign, box, { now: Date.now() - 3_600_000 }));
    assert.equal(r3.code, grpc.status.UNAUTHENTICATED);
    const once = enrollRequest('oz', TOKEN, sign, box);
    assert.equal((await v6.unary('Enroll', once)).code, grpc.status.OK);
    const again = await v6.unary('Enroll', once);
    assert.equal(again.code, grpc.status.UNAUTHENTICATED);
    assert.match(again.details, /already/);
  });

  it('refuses an all-zero or small-order Ed25519 key and an all-zero X25519 key', async () => {
    const box = nacl.box.keyPair().publicKey;
    const fake = (publicKey: Uint8Array): nacl.SignKeyPair => ({ publicKey, secretKey: nacl.sign.keyPair().secretKey });
    const zero = await v6.unary('Enroll', enrollRequest('oz', TOKEN, fake(new Uint8Array(32)), box));
    assert.equal(zero.code, grpc.status.INVALID_ARGUMENT, zero.details);
    assert.match(zero.details, /sign_public_key/);
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const small = await v6.unary('Enroll', enrollRequest('oz', TOKEN, fake(identity), box));
    assert.equal(small.code, grpc.status.INVALID_ARGUMENT, small.details);
    const zeroBox = await v6.unary('Enroll', enrollRequest('oz', TOKEN, nacl.sign.keyPair(), new Uint8Array(32)));
    assert.equal(zeroBox.code, grpc.status.INVALID_ARGUMENT, zeroBox.details);
    assert.match(zeroBox.details, /box_public_key/);
  });

  it('an unknown program and a wrong token get the same answer', async () => {
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair().publicKey;
    const unknown = await v6.unary('Enroll', enrollRequest('nope', TOKEN, sign, box));
    const wrong = await v6.unary('Enroll', enrollRequest('oz', 'not-the-token', sign, box));
    assert.equal(unknown.code, grpc.status.PERMISSION_DENIED);
    assert.deepEqual({ code: wrong.code, details: wrong.details }, { code: unknown.code, details: unknown.details });
  });

  it('throttles a burst of wrong tokens from one peer while another peer enrols', async () => {
    const box = nacl.box.keyPair().publicKey;
    const codes: grpc.status[] = [];
    let last = '';
    for (let i = 0; i < 8; i++) {
      const r = await v4.unary('Enroll', enrollRequest('oz', `guess-${i}`, nacl.sign.keyPair(), box));
      codes.push(r.code);
      last = r.details;
    }
    assert.ok(codes.slice(0, 3).every((c) => c === grpc.status.PERMISSION_DENIED), String(codes));
    assert.equal(codes.at(-1), grpc.status.RESOURCE_EXHAUSTED);
    assert.match(last, /retry in \d+ s/);
    const right = await v4.unary('Enroll', enrollRequest('oz', TOKEN, nacl.sign.keyPair(), box));
    assert.equal(right.code, grpc.status.RESOURCE_EXHAUSTED, 'the throttled peer waits even with the right token');
    const other = await v6.unary('Enroll', enrollRequest('oz', TOKEN, nacl.sign.keyPair(), box));
    assert.equal(other.code, grpc.status.OK, other.details);
  });

  it('a stale timestamp and one signed before the coordinator started get their own sentences', async () => {
    const d = await enroll();
    const stale = await v4.unary('CheckIn', signed(CHECK_IN, 'oz', d.deviceId, str(2, 'oz'), d.sign.secretKey, { now: Date.now() - 3_600_000 }));
    assert.equal(stale.code, grpc.status.UNAUTHENTICATED);
    assert.match(stale.details, /3600 s from the coordinator's clock/);
    assert.doesNotMatch(stale.details, /restarted/);
    const before = await v4.unary('CheckIn', signed(CHECK_IN, 'oz', d.deviceId, str(2, 'oz'), d.sign.secretKey, { now: startedAt - 5000 }));
    assert.equal(before.code, grpc.status.UNAUTHENTICATED);
    assert.match(before.details, /before the coordinator \(re\)started/);
  });

  it('CheckIn refuses an adapter_version newer than the latest', async () => {
    const d = await enroll();
    const r = await v4.unary('CheckIn', signed(CHECK_IN, 'oz', d.deviceId, Buffer.concat([str(2, 'oz'), int(3, 5)]), d.sign.secretKey));
    assert.equal(r.code, grpc.status.INVALID_ARGUMENT, r.details);
    assert.match(r.details, /adapter_version 5 is newer than the latest version 0/);
  });

  it('DownloadBlob raises max_chunk_bytes below 64 KiB to 64 KiB', async () => {
    const d = await enroll();
    const base = running.coordinator.program('oz').base.blob.sha256;
    const r = await v4.serverStream('DownloadBlob', signed('/fedtune.v1.Coordinator/DownloadBlob', 'oz', d.deviceId, Buffer.concat([str(2, base), int(4, 1)]), d.sign.secretKey), (m) => m.length >= 2);
    assert.equal(r.code, grpc.status.OK, r.details);
    assert.equal((parseFields(r.messages[0]).get(3) as Buffer).length, 64 * 1024);
    assert.equal(parseFields(r.messages[1]).get(2), BigInt(64 * 1024));
  });
});
