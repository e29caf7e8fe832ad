import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { authFor, Device, secAggRound, sleep, unaryCall, uploadUpdate, type DeviceSummary, type SecAggContext } from '../../client/index.js';
import { seal } from '../../privacy/box.js';
import { encodeMasked, loadProtos } from '../../proto/index.js';
import type { CheckInResponse__Output } from '../../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../../proto/generated/fedtune/v1/Coordinator.js';
import type { EnrollResponse__Output } from '../../proto/generated/fedtune/v1/EnrollResponse.js';
import type { SecAggRequest } from '../../proto/generated/fedtune/v1/SecAggRequest.js';
import type { SecAggShareValue } from '../../proto/generated/fedtune/v1/SecAggShareValue.js';
import { cryptoRng } from '../../random/rng.js';
import { secAggShape, startCoordinator, type RoundEventRecord, type RunningCoordinator } from '../../server/index.js';
import { corpus } from '../helpers.js';
import { smallProgram, TOKEN } from './fixtures.js';

const M = 'fedtune.v1.Coordinator';

describe('secure aggregation over gRPC (SecAgg+ stages through the coordinator)', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-secagg-'));
  const oz = corpus('wizard-of-oz.txt');
  const common = { lora: { rank: 2, targets: ['wq', 'wv'], seed: 4 }, training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2 }, overSelect: 1, rounds: 1, dp: { clipNorm: 0.5 } };
  let running: RunningCoordinator;

  before(async () => {
    running = await startCoordinator({
      dataDir: dir,
      port: 0,
      programs: [
        smallProgram('sa', { ...common, cohortSize: 5, minUpdates: 3, secagg: { phaseTimeoutMs: 8000 } }),
        smallProgram('plain', { ...common, cohortSize: 4, minUpdates: 4 }),
      ],
    });
  });
  after(() => running.shutdown(500));

  /** Devices i in `ids` on a program; device `drop` aborts right after sharing its keys. */
  const run = (programId: string, ids: number[], drop?: number) =>
    Promise.allSettled(
      ids.map(async (i) => {
        const ac = new AbortController();
        const d = new Device({ address: running.address, programId, dataDir: join(dir, `${programId}-${i}`), enrolmentToken: TOKEN, text: [oz.slice(i * 12_000, (i + 1) * 12_000)], seed: 100 + i, maxWaitMs: 100 });
        d.progress$.subscribe((e) => {
          if (i === drop && e.kind === 'secagg' && e.stage === 'shared') ac.abort();
        });
        try {
          return await d.run(ac.signal);
        } finally {
          d.close();
        }
      }),
    );

  it('the coordinator learns the survivors’ sum exactly (= plain FedAvg of the same updates), with a device dropping after key sharing', async () => {
    const events: RoundEventRecord[] = [];
    running.coordinator.program('sa').runner.events$.subscribe((e) => events.push(e));
    const sa = await run('sa', [0, 1, 2, 3, 4], 4);
    const ok = sa.filter((r): r is PromiseFulfilledResult<DeviceSummary> => r.status === 'fulfilled').map((r) => r.value);
    assert.equal(ok.length, 4, JSON.stringify(sa.map((r) => r.status)));
    assert.ok(ok.every((s) => s.updatesAccepted === 1));
    const done = events.find((e) => e.state === 'COMPLETED');
    assert.ok(done, JSON.stringify(events.map((e) => e.message)));
    assert.equal(done.updatesReceived, 4);
    // the same four devices (same seeds, same text, same initial adapter) on a plain FedAvg program
    const plain = await run('plain', [0, 1, 2, 3]);
    assert.ok(plain.every((r) => r.status === 'fulfilled'));
    const a = running.coordinator.program('sa').runner.current().global;
    const b = running.coordinator.program('plain').runner.current().global;
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i] - b[i]));
      moved = Math.max(moved, Math.abs(b[i]));
    }
    assert.ok(moved > 1e-4, 'the round changed the adapter');
    assert.ok(worst < 1e-6, `secure and plain aggregates differ by ${worst}`);
  });

  it('chooses k and t so a round survives 30% dropout with 99% probability (k/2 < t ≤ k, k ≤ n − 1, even)', () => {
    // the tail P(Bin(k, 0.7) < t), computed here by direct summation of exact terms
    const below = (k: number, t: number): number => {
      let sum = 0;
      for (let x = 0; x < t; x++) {
        let c = 1;
        for (let j = 0; j < x; j++) c = (c * (k - j)) / (j + 1);
        sum += c * 0.7 ** x * 0.3 ** (k - x);
      }
      return sum;
    };
    for (const n of [3, 4, 10, 57, 100, 500]) {
      const { k, t } = secAggShape(n);
      assert.ok(k % 2 === 0 && k <= n - 1 && k / 2 < t && t <= k, `n ${n}: k ${k} t ${t}`);
      if (k < n - 2) {
        assert.ok(n * below(k, t) <= 0.01, `n ${n}: k ${k} fails too often`);
        assert.ok(n * below(k - 2, Math.floor((k - 2) / 2) + 1) > 0.01, `n ${n}: k ${k} is not the smallest`);
      }
    }
    assert.deepEqual(secAggShape(500, 20), { k: 20, t: 11 });
  });
});

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
      ],
    });
    client = new (loadProtos().fedtune.fedtune.v1.Coordinator)(running.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await running.shutdown(500);
  });

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
   * zeros) but answers the unmask request with random share values. Resolves with the statuses it
   * was refused with.
   */
  const liar = async (programId: string): Promise<{ codes: number[]; lied: number }> => {
    const sign = nacl.sign.keyPair();
    const box = nacl.box.keyPair();
    const e = await unaryCall<EnrollResponse__Output>((o, cb) => client.Enroll({ programId, enrolmentToken: TOKEN, signPublicKey: Buffer.from(sign.publicKey), boxPublicKey: Buffer.from(box.publicKey) }, o, cb), 5000);
    const signed = <T extends Record<string, unknown>>(method: string, req: T) => ({ ...req, auth: authFor(`${M}/${method}`, req, e.deviceId, sign) });
    let work: CheckInResponse__Output['work'];
    while (!work) {
      const r = await unaryCall<CheckInResponse__Output>((o, cb) => client.CheckIn(signed('CheckIn', { programId, adapterVersion: 0 }), o, cb), 5000);
      work = r.work;
      if (!work) await sleep(50);
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
      });
    } catch (err) {
      codes.push((err as grpc.ServiceError).code);
    }
    return { codes, lied };
  };

  it('the coordinator survives, no call gets INTERNAL, and the adapter it publishes is the honest devices’ exact sum', async () => {
    const events: RoundEventRecord[] = [];
    running.coordinator.program('hostile').runner.events$.subscribe((e) => events.push(e));
    const refusals: number[] = [];
    const [summaries, bad] = await Promise.all([honest('hostile', [0, 1, 2, 3], refusals), liar('hostile')]);
    assert.ok(bad.lied > 0, 'the hostile participant answered the unmask request with false shares');
    assert.ok(!refusals.includes(grpc.status.INTERNAL) && !bad.codes.includes(grpc.status.INTERNAL), `INTERNAL reached a participant: honest ${JSON.stringify(refusals)}, hostile ${JSON.stringify(bad.codes)}`);
    assert.ok(summaries.every((s) => s.updatesAccepted >= 1));
    // a round the false shares spoiled fails with a reason and leaves the adapter as it was
    for (const f of events.filter((x) => x.state === 'FAILED')) {
      assert.equal(f.adapterVersion, 0);
      assert.match(f.message, /secure aggregation/, f.message);
    }
    const done = events.find((x) => x.state === 'COMPLETED');
    assert.ok(done, JSON.stringify(events.map((x) => x.message)));
    assert.equal(done.adapterVersion, 1);
    // the same four honest devices on a plain FedAvg program; the liar's own input is zero, so
    // survivors × the secure mean = 4 × the plain mean, coordinate by coordinate
    const initial = running.coordinator.program('plain').runner.current().global;
    await honest('plain', [0, 1, 2, 3], []);
    const a = running.coordinator.program('hostile').runner.current().global;
    const b = running.coordinator.program('plain').runner.current().global;
    let worst = 0;
    let moved = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs((a[i] - initial[i]) * done.updatesReceived - (b[i] - initial[i]) * 4));
      moved = Math.max(moved, Math.abs(b[i] - initial[i]));
    }
    assert.ok(moved > 1e-4, 'the round changed the adapter');
    assert.ok(worst < 1e-5, `the secure sum differs from the honest devices' sum by ${worst}`);
  });
});
