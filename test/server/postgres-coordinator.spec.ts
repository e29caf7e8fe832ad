/**
 * The coordinator on PostgreSQL, as real processes (`fedtune coordinator --store postgres://…
 * --blobs postgres`) on a throwaway server: real devices run two rounds through one process while
 * a second process shares the database. Exactly one of them drives the program (its lease); a
 * device enrolled through either is known to both; and a signed request replayed to the other
 * process is refused, because nonces are claimed in the database, not only in a process's memory.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { Device } from '../../client/index.js';
import { openExecutor, PostgresBlobBackend, SqlStateStore } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { auth, enrollRequest, int, msg, parseFields, RawClient, signed, str } from '../proto/raw-wire.js';
import { postgresOrSkip, type TestPostgres } from '../support/postgres.js';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.js';
import { runDevices, TOKEN } from './fixtures.js';

const M = (method: string): string => `/fedtune.v1.Coordinator/${method}`;

describe('server: the coordinator on PostgreSQL (two processes, one database)', function () {
  this.timeout(120_000);
  let pg: TestPostgres | undefined;
  let url = '';
  const procs: CoordinatorProcess[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-pgcoord-'));
  const config = join(dir, 'program.json');

  before(async function () {
    pg = await postgresOrSkip('the coordinator on PostgreSQL');
    if (!pg) return this.skip();
    url = await pg.fresh();
    const program = {
      id: 'oz',
      base: MODEL.bin,
      tokenizer: MODEL.tok,
      enrolmentToken: TOKEN,
      lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 },
      training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' },
      cohortSize: 2,
      minUpdates: 2,
      minContributors: 2,
      overSelect: 1,
      rounds: 2,
      roundDeadlineMs: 60_000,
      retryDelayMs: 100,
    };
    // the replay test's device checks in to a program of its own (it would take a place in oz's rounds)
    // so does the claims test's (rq: a cohort of 4, so one device's answer does not close its round)
    writeFileSync(config, JSON.stringify({ programs: [program, { ...program, id: 'rp', rounds: 1 }, { ...program, id: 'rq', rounds: 1, cohortSize: 4 }] }));
    const args = ['--store', url, '--blobs', 'postgres'];
    // one after the other: the first creates the program, the second finds it (and its lease taken)
    procs.push(await startCoordinatorProcess(config, join(dir, 'a'), { args }));
    procs.push(await startCoordinatorProcess(config, join(dir, 'b'), { args }));
  });

  after(async () => {
    for (const p of procs) if (p.alive()) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await pg?.stop();
  });

  it('a signed enrolment, check-in and upload replayed to the other process are refused as replays', async () => {
    const [a, b] = procs;
    const ca = new RawClient(a.address);
    const cb = new RawClient(b.address);
    try {
      const sign = nacl.sign.keyPair();
      const enrol = enrollRequest('rp', TOKEN, sign, nacl.box.keyPair().publicKey);
      const e = await ca.unary('Enroll', enrol);
      assert.equal(e.code, grpc.status.OK, e.details);
      const deviceId = (parseFields(e.messages[0]).get(1) as Buffer).toString('utf8');
      const enrolAgain = await cb.unary('Enroll', enrol);
      assert.equal(enrolAgain.code, grpc.status.UNAUTHENTICATED, enrolAgain.details);
      assert.match(enrolAgain.details, /replayed nonce/);

      // B knows the device A enrolled (one database), and answers a fresh request of it
      const fresh = await cb.unary('GetProgram', signed(M('GetProgram'), 'rp', deviceId, str(2, 'rp'), sign.secretKey));
      assert.equal(fresh.code, grpc.status.OK, fresh.details);

      const checkIn = signed(M('CheckIn'), 'rp', deviceId, str(2, 'rp'), sign.secretKey);
      const first = await ca.unary('CheckIn', checkIn);
      assert.equal(first.code, grpc.status.OK, first.details);
      for (const [name, client] of [['the same process', ca], ['the other process', cb]] as const) {
        const again = await client.unary('CheckIn', checkIn);
        assert.equal(again.code, grpc.status.UNAUTHENTICATED, `${name}: ${again.details}`);
        assert.match(again.details, /replayed nonce/, name);
      }

      // an upload's signed header: whatever A answers, B refuses the same bytes before looking at the round
      const payload = Buffer.concat([str(2, 'rp'), str(3, 'rp.r1.a1'), int(4, 1), int(5, 64), str(6, 'a'.repeat(64)), str(7, 'f32')]);
      const header = msg(1, auth(M('UploadUpdate'), 'rp', deviceId, payload, sign.secretKey), payload);
      const up = await ca.clientStream('UploadUpdate', [header]);
      assert.notEqual(up.code, grpc.status.UNAUTHENTICATED, up.details);
      const upAgain = await cb.clientStream('UploadUpdate', [header]);
      assert.equal(upAgain.code, grpc.status.UNAUTHENTICATED, upAgain.details);
      assert.match(upAgain.details, /replayed nonce/);
    } finally {
      ca.close();
      cb.close();
    }
  });

  it('a device another replica admitted to a round gets the same work here, and no second place once it answered (claims in the database)', async () => {
    const ca = new RawClient(procs[0].address);
    const db = await openExecutor(url);
    const store = new SqlStateStore(db);
    try {
      const sign = nacl.sign.keyPair();
      const e = await ca.unary('Enroll', enrollRequest('rq', TOKEN, sign, nacl.box.keyPair().publicKey));
      assert.equal(e.code, grpc.status.OK, e.details);
      const deviceId = (parseFields(e.messages[0]).get(1) as Buffer).toString('utf8');
      // as a replica that admitted it would: the claim row of rq's open round
      assert.deepEqual(await store.admitParticipant('rq.r1.a1', deviceId, 'elsewhere', true), { outcome: 'admitted', status: 'working' });
      const r = await ca.unary('CheckIn', signed(M('CheckIn'), 'rq', deviceId, str(2, 'rq'), sign.secretKey));
      assert.equal(r.code, grpc.status.OK, r.details);
      const work = parseFields(r.messages[0]).get(1); // CheckInResponse.work
      assert.ok(Buffer.isBuffer(work), 'the admitted device gets its work order wherever it asks');
      assert.equal((parseFields(work).get(1) as Buffer).toString('utf8'), 'rq.r1.a1');
      // its update stored by that replica: it has answered, and is not admitted again
      assert.equal(await store.acceptRoundUpdate({ roundId: 'rq.r1.a1', deviceId, replicaId: 'elsewhere', update: new Float32Array(4), weight: 1, unclipped: true, bytesReceived: 16 }), 'accepted');
      const again = await ca.unary('CheckIn', signed(M('CheckIn'), 'rq', deviceId, str(2, 'rq'), sign.secretKey));
      assert.equal(again.code, grpc.status.OK, again.details);
      const later = parseFields(again.messages[0]).get(2); // CheckInResponse.later
      assert.ok(Buffer.isBuffer(later), 'the device is told to come back, not given work');
      assert.match(later.toString('latin1'), /already took part in round 1/);
      assert.ok((await store.participants('rq.r1.a1')).includes(deviceId));
    } finally {
      ca.close();
      await store.close();
    }
  });

  it('real devices run two rounds; one process drives, the state and the adapters are in PostgreSQL', async () => {
    const [a, b] = procs;
    // device 1 enrols through B; it then takes part through A with the same identity
    const viaB = new Device({ address: b.address, programId: 'oz', dataDir: join(dir, 'dev', 'oz-1'), enrolmentToken: TOKEN, text: ['unused'], retry: { attempts: 1 } });
    try {
      await viaB.enroll();
    } finally {
      viaB.close();
    }
    const summaries = await runDevices({ address: a.address, programId: 'oz', dir: join(dir, 'dev'), ids: [0, 1], shardChars: 20_000, options: () => ({ maxWaitMs: 200 }) });
    assert.ok(summaries.every((s) => /completed its 2 rounds/.test(s.reason)), JSON.stringify(summaries));
    assert.deepEqual(summaries.map((s) => s.updatesAccepted), [2, 2]);

    const opened = (p: CoordinatorProcess): number => p.lines.filter((l) => l.msg === 'round open' && l.program === 'oz').length;
    assert.equal(opened(a), 2, 'A drove both rounds');
    assert.equal(opened(b), 0, 'B drove none');

    const db = await openExecutor(url);
    const store = new SqlStateStore(db);
    try {
      const rounds = (await store.rounds('oz')).map((r) => [r.roundNumber, r.attempt, r.state, r.adapterVersion, r.updates]);
      assert.deepEqual(rounds, [
        [1, 1, 'completed', 1, 2],
        [2, 1, 'completed', 2, 2],
      ]);
      // every device admitted to a round is claimed in the database (both devices, both rounds)
      for (const id of ['oz.r1.a1', 'oz.r2.a1']) assert.equal((await store.participants(id)).length, 2, id);
      const lease = await store.lease('oz');
      assert.ok(lease && lease.expiresMs > Date.now(), 'the driver holds the lease');
      const blobs = new PostgresBlobBackend(db);
      for (const v of [0, 1, 2]) {
        const rec = await store.version('oz', v);
        assert.ok(rec, `version ${v}`);
        assert.ok(await blobs.verify(rec.sha256), `version ${v}'s adapter is in PostgreSQL and hashes to its name`);
      }
    } finally {
      await store.close();
    }
  });
});
