/**
 * The coordinator under attack from a hostile peer: a real coordinator on a loopback port, and
 * requests built byte by byte (test/proto/raw-wire.ts) or sent over a bare HTTP/2 session that
 * controls flow control and stream counts. Each test is a regression test of an attack that
 * once worked.
 */
import { firstValueFrom } from 'rxjs';
import { filter } from 'rxjs/operators';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { loadProtos } from '../../proto/load.js';
import { seal } from '../../privacy/box.js';
import { RequestVerifier, signKeyPair, signRequest } from '../../privacy/sign.js';
import { encodeUpdate } from '../../proto/update-codec.js';
import { EnrolThrottle, peerKey } from '../../server/enrol-throttle.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { auth, bytes, enrollRequest, int, msg, parseFields, RawClient, signed, str } from '../proto/raw-wire.js';
import { smallProgram, TOKEN } from './fixtures.js';

const M = (method: string): string => `/fedtune.v1.Coordinator/${method}`;

interface Device {
  readonly deviceId: string;
  readonly sign: nacl.SignKeyPair;
}

interface Status {
  readonly code: number;
  readonly details: string;
}

/** One gRPC call over a bare HTTP/2 session: its status once the server sends it. */
function rawCall(session: http2.ClientHttp2Session, method: string, message: Buffer, o: { end?: boolean; pause?: boolean } = {}): { status: Promise<Status>; stream: http2.ClientHttp2Stream } {
  const stream = session.request({ ':method': 'POST', ':path': M(method), 'content-type': 'application/grpc', te: 'trailers' });
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  stream.write(framed);
  if (o.end ?? true) stream.end();
  if (o.pause) stream.pause();
  const status = new Promise<Status>((resolve) => {
    const from = (h: http2.IncomingHttpHeaders): void => {
      if (h['grpc-status'] !== undefined) resolve({ code: Number(h['grpc-status']), details: decodeURIComponent(String(h['grpc-message'] ?? '')) });
    };
    stream.on('response', from);
    stream.on('trailers', from);
    stream.on('error', () => resolve({ code: grpc.status.UNAVAILABLE, details: 'the stream broke' }));
    stream.on('close', () => resolve({ code: grpc.status.UNAVAILABLE, details: 'closed without a status' }));
  });
  return { status, stream };
}

/** Resolves with the value, or with 'pending' after `ms`. */
const within = <T>(p: Promise<T>, ms: number): Promise<T | 'pending'> => Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms).unref())]);

describe('server: attacks from a hostile peer', function () {
  this.timeout(60_000);
  let running: RunningCoordinator;
  let client: RawClient;
  const sessions: http2.ClientHttp2Session[] = [];

  before(async () => {
    running = await startCoordinator({
      dataDir: mkdtempSync(join(tmpdir(), 'fedtune-attacks-')),
      port: 0,
      programs: [
        smallProgram('oz', { cohortSize: 50, minUpdates: 50, overSelect: 2 }),
        smallProgram('other', { cohortSize: 2, minUpdates: 2 }),
        smallProgram('brief', { cohortSize: 2, minUpdates: 2, roundDeadlineMs: 1500, retryDelayMs: 100 }),
      ],
    });
    client = new RawClient(running.address);
  });
  after(async () => {
    for (const s of sessions) s.destroy();
    client.close();
    await running.shutdown(500);
  });

  /** A bare HTTP/2 session that never opens its receive window: the server's data cannot flow. */
  const stalledSession = (): http2.ClientHttp2Session => {
    const s = http2.connect(`http://${running.address}`, { settings: { initialWindowSize: 0 } });
    s.on('error', () => {});
    sessions.push(s);
    return s;
  };

  const enroll = async (programId = 'oz'): Promise<Device> => {
    const sign = nacl.sign.keyPair();
    const r = await client.unary('Enroll', enrollRequest(programId, TOKEN, sign, nacl.box.keyPair().publicKey));
    assert.equal(r.code, grpc.status.OK, r.details);
    return { deviceId: (parseFields(r.messages[0]).get(1) as Buffer).toString('utf8'), sign };
  };

  it('a status never echoes a huge input: an unknown device id of 100 000 characters still gets its answer', async () => {
    const d = await enroll();
    const huge = `dev-${'x'.repeat(100_000)}`;
    // its own connection: the unanswerable status once stalled the connection it came on
    const own = http2.connect(`http://${running.address}`);
    own.on('error', () => {});
    sessions.push(own);
    const answer = await within(rawCall(own, 'CheckIn', signed(M('CheckIn'), 'oz', huge, str(2, 'oz'), d.sign.secretKey)).status, 5000);
    assert.notEqual(answer, 'pending', 'no status came back');
    const r = answer as Status;
    assert.equal(r.code, grpc.status.UNAUTHENTICATED, r.details);
    assert.match(r.details, /unknown device/);
    assert.ok(r.details.length <= 1000, `the sentence is ${r.details.length} characters`);
  });

  it('an enrolled device cannot learn which other programs exist: a foreign and a missing program are answered alike', async () => {
    const d = await enroll();
    const ask = async (programId: string): Promise<Status> => {
      const r = await client.unary('CheckIn', signed(M('CheckIn'), programId, d.deviceId, str(2, programId), d.sign.secretKey));
      return { code: r.code, details: r.details.replace(programId, '<id>') };
    };
    const foreign = await ask('other');
    const missing = await ask('no-such-program');
    assert.equal(foreign.code, grpc.status.PERMISSION_DENIED, foreign.details);
    assert.deepEqual(missing, foreign);
  });

  it('one device cannot hold more than a few DownloadBlob streams open: more are refused until one ends', async () => {
    const d = await enroll();
    const base = running.coordinator.program('oz').base.blob.sha256;
    const s = stalledSession();
    const download = (): ReturnType<typeof rawCall> => rawCall(s, 'DownloadBlob', signed(M('DownloadBlob'), 'oz', d.deviceId, str(2, base), d.sign.secretKey));
    // every stalled stream once stayed open holding a chunk of the base (6 GB for 6 000 streams)
    const calls = Array.from({ length: 12 }, download);
    const answers = await Promise.all(calls.map((c) => within(c.status, 3000)));
    assert.deepEqual(answers.slice(0, 4), ['pending', 'pending', 'pending', 'pending'], 'the first four stream');
    for (const a of answers.slice(4)) {
      assert.notEqual(a, 'pending', 'a download beyond the limit is open');
      assert.equal((a as Status).code, grpc.status.RESOURCE_EXHAUSTED, (a as Status).details);
    }
    // one ends (the device cancels it): once the coordinator has seen that, another may start
    calls[0].stream.close(http2.constants.NGHTTP2_CANCEL);
    let again: Status | 'pending' = 'pending';
    for (let i = 0; i < 20; i++) {
      again = await within(download().status, 500);
      if (again === 'pending') break;
      assert.equal(again.code, grpc.status.RESOURCE_EXHAUSTED, again.details);
    }
    assert.equal(again, 'pending', 'a download after one ended streams');
  });

  it('one device cannot hold more than a few WatchRounds streams open: more are refused', async () => {
    const d = await enroll();
    const s = stalledSession();
    const calls = Array.from({ length: 10 }, () => rawCall(s, 'WatchRounds', signed(M('WatchRounds'), 'oz', d.deviceId, str(2, 'oz'), d.sign.secretKey)));
    const answers = await Promise.all(calls.map((c) => within(c.status, 3000)));
    assert.deepEqual(answers.slice(0, 4), ['pending', 'pending', 'pending', 'pending'], 'the first four watch');
    for (const a of answers.slice(4)) {
      assert.notEqual(a, 'pending', 'a watch beyond the limit is open');
      assert.equal((a as Status).code, grpc.status.RESOURCE_EXHAUSTED, (a as Status).details);
    }
  });

  /** The header chunk of an upload to `roundId` announcing `payloadBytes`. */
  const header = (d: Device, programId: string, roundId: string, payloadBytes: number): Buffer => {
    const payload = Buffer.concat([str(2, programId), str(3, roundId), int(4, 1), int(5, payloadBytes), str(6, 'a'.repeat(64)), str(7, 'f32')]);
    return msg(1, auth(M('UploadUpdate'), programId, d.deviceId, payload, d.sign.secretKey), payload);
  };
  /** Check in until the device gets work (a round may be between attempts); the round id. */
  const workFor = async (d: Device, programId: string): Promise<string> => {
    for (;;) {
      const r = await client.unary('CheckIn', signed(M('CheckIn'), programId, d.deviceId, str(2, programId), d.sign.secretKey));
      assert.equal(r.code, grpc.status.OK, r.details);
      const answer = parseFields(r.messages[0]);
      const work = answer.get(1);
      if (work instanceof Buffer) return (parseFields(work).get(1) as Buffer).toString('utf8');
      const later = parseFields(answer.get(2) as Buffer);
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, Number(later.get(1) ?? 100n))));
    }
  };

  it('one device holds one upload at a time: a newer upload ends the older one (no buffer per open stream)', async () => {
    const d = await enroll();
    const roundId = await workFor(d, 'oz');
    const p = running.coordinator.program('oz');
    const size = running.coordinator.sealedBytes(p, 'f32');
    const s = http2.connect(`http://${running.address}`);
    s.on('error', () => {});
    sessions.push(s);
    // headers that never see their data: each once held a buffer of the whole update until the client left
    const calls = Array.from({ length: 5 }, () => rawCall(s, 'UploadUpdate', header(d, 'oz', roundId, size), { end: false }));
    const ended = (await Promise.all(calls.map((c) => within(c.status, 4000)))).filter((x) => x !== 'pending') as Status[];
    assert.equal(ended.length, 4, 'all but the newest upload were ended');
    for (const e of ended) assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED, e.details);
    for (const c of calls) c.stream.close();
  });

  it('only the signed header counts: an unsigned header before it in the same chunk changes nothing (no proto3 merge)', async () => {
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair();
    const e = await client.unary('Enroll', enrollRequest('oz', TOKEN, sign, box.publicKey));
    const enrolled = parseFields(e.messages[0]);
    const d: Device = { deviceId: (enrolled.get(1) as Buffer).toString('utf8'), sign };
    const roundId = await workFor(d, 'oz');
    const sealed = seal(encodeUpdate(new Float32Array(running.coordinator.program('oz').updateLength).fill(1e-3)), Uint8Array.from(enrolled.get(2) as Buffer), box);
    // the signed header leaves num_examples out (0: refused); an unsigned one before it says 12 (valid)
    const payload = Buffer.concat([str(2, 'oz'), str(3, roundId), int(5, sealed.length), str(6, createHash('sha256').update(sealed).digest('hex')), str(7, 'f32')]);
    const unsigned = msg(1, str(2, 'oz'), str(3, roundId), int(4, 12), int(5, sealed.length), str(7, 'f32'));
    const chunk = Buffer.concat([unsigned, msg(1, auth(M('UploadUpdate'), 'oz', d.deviceId, payload, sign.secretKey), payload)]);
    const r = await client.clientStream('UploadUpdate', [chunk, bytes(2, sealed)]);
    // a decoder that merged repeated message fields (as proto3 says) would take num_examples 12 from unsigned bytes
    assert.equal(r.code, grpc.status.INVALID_ARGUMENT, r.details);
    assert.match(r.details, /num_examples .* got 0/);
  });

  // Found by the outside attack: anyone, unauthenticated, could open unlimited streams that never
  // send their request (~7 kB each: 20 000 idle streams on 20 connections grew the coordinator by
  // 142 MB); the server now caps streams per connection and closes idle connections.
  it('caps the streams one connection may hold open (max_concurrent_streams)', async () => {
    const s = http2.connect(`http://${running.address}`);
    s.on('error', () => {});
    sessions.push(s);
    const settings = await new Promise<http2.Settings>((resolve) => s.once('remoteSettings', resolve));
    assert.ok((settings.maxConcurrentStreams ?? Infinity) <= 1000, `the server allows ${settings.maxConcurrentStreams} streams per connection`);
  });

  it('an upload that never ends is ended at its round deadline (slowloris)', async () => {
    const d = await enroll('brief');
    const p = running.coordinator.program('brief');
    // a round with time left, so the header is taken before its deadline
    let roundId: string;
    for (;;) {
      // too little time left in this round: wait for the next one to open (subscribed before asking)
      const opened = firstValueFrom(p.runner.events$.pipe(filter((e) => e.state === 'OPEN'))).catch(() => undefined);
      roundId = await workFor(d, 'brief');
      if ((p.runner.roundDeadline(roundId) ?? 0) - Date.now() >= 600) break;
      await opened;
    }
    const s = http2.connect(`http://${running.address}`);
    s.on('error', () => {});
    sessions.push(s);
    const call = rawCall(s, 'UploadUpdate', header(d, 'brief', roundId, running.coordinator.sealedBytes(p, 'f32')), { end: false });
    // the round's deadline is 1.5 s away at most
    const r = await within(call.status, 6000);
    assert.notEqual(r, 'pending', 'the upload is still open long after its round closed');
    assert.equal((r as Status).code, grpc.status.DEADLINE_EXCEEDED, (r as Status).details);
    assert.match((r as Status).details, /deadline passed before the update arrived in full/);
    call.stream.close();
  });
});

describe('server: enrolment throttling against address rotation', () => {
  it('an IPv6 peer is throttled by its /64: rotating addresses within it buys no fresh allowance', () => {
    // a host holds a whole /64; keyed by address it once got 10 wrong tokens per address, and
    // twenty of its addresses could push the global limit over, holding every enrolment back
    assert.equal(peerKey('[2001:db8:0:1::5]:40000'), peerKey('ipv6:[2001:db8:0:1:ffff:1:2:3]:41000'));
    assert.equal(peerKey('2001:db8:0:1:a:b:c:d:40000'), '2001:db8:0:1::/64');
    assert.notEqual(peerKey('[2001:db8:0:2::5]:40000'), peerKey('[2001:db8:0:1::5]:40000'));
    assert.equal(peerKey('[::1]:40000'), '0:0:0:0::/64');
    assert.equal(peerKey('[fe80::1%eth0]:40000'), 'fe80:0:0:0::/64');
    assert.equal(peerKey('[64:ff9b::10.1.2.3]:40000'), '64:ff9b:0:0::/64');
    // IPv4 stays per address, mapped or not
    assert.equal(peerKey('ipv4:10.1.2.3:5555'), '10.1.2.3');
    assert.equal(peerKey('::ffff:10.1.2.3:5555'), '10.1.2.3');
    const t = new EnrolThrottle({ perPeer: 3, global: 100, windowMs: 60_000 });
    for (let i = 1; i <= 3; i++) t.fail(peerKey(`[2001:db8:0:1::${i}]:40000`), 0);
    assert.ok(t.waitMs(peerKey('[2001:db8:0:1::99]:40000'), 1) > 0, 'a fourth address of the /64 waits');
    assert.equal(t.waitMs(peerKey('[2001:db8:0:2::1]:40000'), 1), 0, 'another /64 does not');
  });
});

describe('server: the wire check costs no more than decoding', () => {
  it('a 1 MiB request of 500 000 tiny fields is checked and decoded in linear time (before any signature)', () => {
    // once ~250 ms of CPU per MiB for anyone, unauthenticated: ~4 MB/s held the event loop
    const svc = loadProtos().definition['fedtune.v1.Coordinator'] as unknown as Record<string, { requestDeserialize(b: Buffer): unknown }>;
    const n = 500_000;
    const tiny = Buffer.alloc(2 * n);
    for (let i = 0; i < n; i++) tiny.set([0x38, 0x01], 2 * i); // field 7 (unknown to Enroll) = 1
    let best = Infinity;
    for (let k = 0; k < 4; k++) {
      const t = performance.now();
      svc.Enroll.requestDeserialize(tiny);
      svc.UploadUpdate.requestDeserialize(tiny);
      best = Math.min(best, performance.now() - t);
    }
    // a bound that only a super-linear path misses (measured ~30 ms on a quiet machine; the speed
    // itself is a benchmark's business, not a unit test's): quadratic work here would take minutes
    assert.ok(best < 2000, `checking and decoding two such requests took ${best.toFixed(0)} ms`);
  });
});

describe('server: one device cannot grow the remembered nonces without bound', () => {
  it('past its cap within the freshness window a signer is told to slow down; forged requests do not count', () => {
    // every verified nonce was once kept for the whole window: a device signing flat out grew it by ~300 B a request
    const keys = signKeyPair();
    const scope = { method: '/fedtune.v1.Coordinator/CheckIn', programId: 'oz' };
    const body = new Uint8Array([0x12, 0x02, 0x6f, 0x7a]);
    const v = new RequestVerifier(60_000, 5);
    const now = 1_700_000_000_000;
    const forged = { ...signRequest(scope, 'dev-1', body, keys, now), signature: new Uint8Array(64) };
    assert.equal(v.verify(forged, scope, body, keys.publicKey, now), 'bad-signature');
    for (let i = 0; i < 5; i++) assert.equal(v.verify(signRequest(scope, 'dev-1', body, keys, now + i), scope, body, keys.publicKey, now + i), 'ok');
    assert.equal(v.verify(signRequest(scope, 'dev-1', body, keys, now + 10), scope, body, keys.publicKey, now + 10), 'too-many');
    assert.equal(v.verify(signRequest(scope, 'dev-2', body, keys, now + 10), scope, body, keys.publicKey, now + 10), 'ok', 'another device is not held back');
    // once the first ones leave the window, the device may sign again
    assert.equal(v.verify(signRequest(scope, 'dev-1', body, keys, now + 61_010), scope, body, keys.publicKey, now + 61_010), 'ok');
  });

  it('the coordinator answers RESOURCE_EXHAUSTED with a sentence, and a replay is still a replay', async () => {
    const running = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'fedtune-nonces-')), port: 0, maxNoncesPerSigner: 3, programs: [smallProgram('oz')] });
    const client = new RawClient(running.address);
    try {
      const sign = nacl.sign.keyPair();
      const e = await client.unary('Enroll', enrollRequest('oz', TOKEN, sign, nacl.box.keyPair().publicKey));
      assert.equal(e.code, grpc.status.OK, e.details);
      const deviceId = (parseFields(e.messages[0]).get(1) as Buffer).toString('utf8');
      const first = signed(M('GetProgram'), 'oz', deviceId, str(2, 'oz'), sign.secretKey);
      const codes: number[] = [];
      for (const req of [first, first, ...Array.from({ length: 3 }, () => signed(M('GetProgram'), 'oz', deviceId, str(2, 'oz'), sign.secretKey))]) codes.push((await client.unary('GetProgram', req)).code);
      assert.deepEqual(codes, [grpc.status.OK, grpc.status.UNAUTHENTICATED, grpc.status.OK, grpc.status.OK, grpc.status.RESOURCE_EXHAUSTED]);
      const last = await client.unary('CheckIn', signed(M('CheckIn'), 'oz', deviceId, str(2, 'oz'), sign.secretKey));
      assert.equal(last.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(last.details, /slow down/);
    } finally {
      client.close();
      await running.shutdown(500);
    }
  });
});
