import { enrollRequestFor } from '../../client/rpc.js';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { firstValueFrom } from 'rxjs';
import { filter } from 'rxjs/operators';
import { authFor, Device, secAggRound, unaryCall, uploadUpdate, type SecAggContext } from '../../client/index.js';
import { seal } from '../../privacy/box.js';
import { encodeMasked, loadProtos } from '../../proto/index.js';
import type { CheckInResponse__Output } from '../../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../../proto/generated/fedtune/v1/Coordinator.js';
import type { EnrollResponse__Output } from '../../proto/generated/fedtune/v1/EnrollResponse.js';
import type { SecAggRequest } from '../../proto/generated/fedtune/v1/SecAggRequest.js';
import type { SecAggShareValue } from '../../proto/generated/fedtune/v1/SecAggShareValue.js';
import { cryptoRng } from '../../random/rng.js';
import { startCoordinator, type RoundEventRecord, type RunningCoordinator } from '../../server/index.js';
import { corpus } from '../helpers.js';
import { smallProgram, TOKEN } from './fixtures.js';

const M = 'fedtune.v1.Coordinator';

describe('secure aggregation with a hostile participant (garbage shares at unmask)', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-secagg-hostile-'));
  const oz = corpus('wizard-of-oz.txt');
  const common = { lora: { rank: 2, targets: ['wq', 'wv'], seed: 4 }, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2 }, overSelect: 1, rounds: 1, dp: { clipNorm: 0.5 } };
  let running: RunningCoordinator;
  let client: CoordinatorClient;

  before(async () => {
    running = await startCoordinator({
      dataDir: dir,
      port: 0,
      programs: [
        smallProgram('hostile', { ...common, cohortSize: 5, minUpdates: 3, retryDelayMs: 100, secagg: { phaseTimeoutMs: 4000 } }),
        smallProgram('plain', { ...common, cohortSize: 4, minUpdates: 4 }),
        smallProgram('hostile2', { ...common, cohortSize: 5, minUpdates: 3, retryDelayMs: 100, secagg: { phaseTimeoutMs: 3000 } }),
        smallProgram('plain3', { ...common, cohortSize: 3, minUpdates: 3 }),
      ],
    });
    client = new (loadProtos().fedtune.fedtune.v1.Coordinator)(running.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await running.shutdown(500);
  });

  /** Enrol a hand-made participant. */
  const enroll = (programId: string, sign: nacl.SignKeyPair, boxPublicKey: Uint8Array): Promise<EnrollResponse__Output> =>
    unaryCall<EnrollResponse__Output>((o, cb) => client.Enroll(enrollRequestFor(programId, TOKEN, sign, boxPublicKey), o, cb), 5000);

  /** Honest Devices i in `ids` on a program; every status they are refused with is collected. */
  const honest = (programId: string, ids: number[], refusals: number[]) =>
    Promise.all(
      ids.map(async (i) => {
        const d = new Device({ address: running.address, programId, dataDir: join(dir, `${programId}-${i}`), enrolmentToken: TOKEN, text: [oz.slice(i * 12_000, (i + 1) * 12_000)], seed: 100 + i, maxWaitMs: 100 });
        d.progress$.subscribe((e) => {
          if (e.kind === 'rejected') refusals.push(e.code);
        });
        try {
          return await d.run();
        } finally {
          d.close();
        }
      }),
    );

  /**
   * A participant built from client/secagg-client.ts: it follows every stage (its own input is all
   * zeros) but answers the unmask request with random share values — or, `silent`, never answers
   * it. Resolves with the gRPC statuses it was refused with.
   */
  const liar = async (programId: string, silent = false): Promise<{ codes: number[]; lied: number }> => {
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair();
    const e = await enroll(programId, sign, box.publicKey);
    const signed = <T extends Record<string, unknown>>(method: string, req: T) => ({ ...req, auth: authFor(`${M}/${method}`, req, e.deviceId, sign) });
    let work: CheckInResponse__Output['work'];
    while (!work) {
      // no work now: wait for the next round to open (subscribed before asking, so it cannot be missed)
      const opened = firstValueFrom(running.coordinator.program(programId).runner.events$.pipe(filter((ev) => ev.state === 'OPEN'))).catch(() => undefined);
      const r = await unaryCall<CheckInResponse__Output>((o, cb) => client.CheckIn(signed('CheckIn', { programId, adapterVersion: 0 }), o, cb), 5000);
      work = r.work;
      if (!work) await opened;
    }
    const codes: number[] = [];
    let lied = 0;
    const randomHex = () => Buffer.from(nacl.randomBytes(64)).toString('hex').slice(0, 120).replace(/^0+/, '') || '1';
    const ctx: SecAggContext = {
      client,
      programId,
      roundId: work.roundId,
      sign: (req: SecAggRequest) => {
        if (req.unmask) {
          const lie = (list: SecAggShareValue[] | undefined) => (list ?? []).map((v) => (lied++, { owner: v.owner, yHex: randomHex() }));
          req = { ...req, unmask: { selfMask: lie(req.unmask.selfMask), key: lie(req.unmask.key) } };
        }
        return signed('SecAgg', req as Record<string, unknown>) as SecAggRequest;
      },
      signSecretKey: sign.secretKey,
      rng: cryptoRng(),
      deadlineUnixMs: Number(work.deadlineUnixMs),
      rpcDeadlineMs: 10_000,
    };
    const meta = { programId, roundId: work.roundId, numExamples: 1, encoding: 'masked', unclipped: true };
    try {
      await secAggRound(ctx, new Float32Array(running.coordinator.program(programId).updateLength), async (y) => {
        await uploadUpdate(client, e.deviceId, sign, meta, seal(encodeMasked(y), Uint8Array.from(e.programBoxPublicKey), box));
        if (silent) throw new Error('silent: gone after masking');
      });
    } catch (err) {
      const code = (err as grpc.ServiceError).code;
      if (typeof code === 'number') codes.push(code);
    }
    return { codes, lied };
  };

  /** survivors × (secure adapter − initial) = honest × (plain adapter − initial), coordinate by coordinate (the liars' inputs are zero). */
  const assertSameSum = (secure: string, survivors: number, plain: string, honestCount: number, initial: Float32Array): void => {
    const a = running.coordinator.program(secure).runner.current().global;
    const b = running.coordinator.program(plain).runner.current().global;
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs((a[i] - initial[i]) * survivors - (b[i] - initial[i]) * honestCount));
      moved = Math.max(moved, Math.abs(b[i] - initial[i]));
    }
    assert.ok(moved > 1e-4, 'the round changed the adapter');
    assert.ok(worst < 1e-5, `the secure sum differs from the honest devices' sum by ${worst}`);
  };

  /** Check a program's events: failed attempts left the adapter alone and say why; one completed with version 1. */
  const settled = (events: RoundEventRecord[]): RoundEventRecord => {
    for (const f of events.filter((x) => x.state === 'FAILED')) {
      assert.equal(f.adapterVersion, 0);
      assert.match(f.message, /secure aggregation/, f.message);
    }
    const done = events.find((x) => x.state === 'COMPLETED');
    assert.ok(done, JSON.stringify(events.map((x) => x.message)));
    assert.equal(done.adapterVersion, 1);
    return done;
  };

  it('one liar among five: its false shares are found and left out, no call gets INTERNAL, and the published sum is exact', async () => {
    const events: RoundEventRecord[] = [];
    running.coordinator.program('hostile').runner.events$.subscribe((e) => events.push(e));
    const refusals: number[] = [];
    const [summaries, bad] = await Promise.all([honest('hostile', [0, 1, 2, 3], refusals), liar('hostile')]);
    assert.ok(bad.lied > 0, 'the hostile participant answered the unmask request with false shares');
    assert.ok(!refusals.includes(grpc.status.INTERNAL) && !bad.codes.includes(grpc.status.INTERNAL), `INTERNAL reached a participant: honest ${JSON.stringify(refusals)}, hostile ${JSON.stringify(bad.codes)}`);
    assert.ok(summaries.every((x) => x.updatesAccepted >= 1));
    const done = settled(events);
    const initial = running.coordinator.program('plain').runner.current().global;
    await honest('plain', [0, 1, 2, 3], []);
    assert.equal(done.updatesReceived, 5, 'the liar (input zero) is a survivor: only its false shares were left out');
    assertSameSum('hostile', done.updatesReceived, 'plain', 4, initial);
  });

  it('a liar and a participant that never unmasks: the unmask phase times out, the round fails cleanly (the process lives), the next attempt gets the exact sum', async () => {
    const events: RoundEventRecord[] = [];
    running.coordinator.program('hostile2').runner.events$.subscribe((e) => events.push(e));
    const refusals: number[] = [];
    const [, bad, gone] = await Promise.all([honest('hostile2', [0, 1, 2], refusals), liar('hostile2'), liar('hostile2', true)]);
    assert.ok(bad.lied > 0);
    for (const codes of [refusals, bad.codes, gone.codes]) assert.ok(!codes.includes(grpc.status.INTERNAL), `INTERNAL reached a participant: ${JSON.stringify(codes)}`);
    // an attempt may also fail earlier for want of check-ins on a loaded machine; the spoiled one fails at unmasking
    const failed = events.filter((x) => x.state === 'FAILED');
    assert.ok(failed.some((x) => /could not unmask the sum/.test(x.message)), `the spoiled attempt fails at unmasking: ${JSON.stringify(failed.map((x) => x.message))}`);
    const done = settled(events);
    assert.equal(done.updatesReceived, 3);
    const initial = running.coordinator.program('plain3').runner.current().global;
    await honest('plain3', [0, 1, 2], []);
    assertSameSum('hostile2', 3, 'plain3', 3, initial);
  });
});
