/**
 * Worker-thread entry hosting part of a simulated population. It opens the base once and lends
 * it to every device it runs (Device option `model`), shares a few gRPC channels among them,
 * and keeps no per-device state between rounds: a device exists only while it enrols or works
 * on a round — the real Device library against the real coordinator, with keys derived from the
 * population's master secret, its shard's text cut from the domains' text, and a scratch data
 * dir removed afterwards. Messages: {@link FleetRequest} in, {@link FleetReply} out.
 *
 * A round: every online device of the worker's share makes ONE signed CheckIn (many at once over
 * the shared channels; nothing else is built for it); the coordinator's coin decides. A device
 * the coordinator did not sample gets a ComeBack and is done (counted, not reported one by one).
 * A sampled device then runs as a full Device (its second check-in returns the same work order),
 * at most `concurrency` at once, or all at once under secure aggregation; their local training
 * goes through one {@link BatchingTrainer} per worker, so the devices training at the same time
 * run as one tensor program (CohortTrainer; each device's update exact).
 */
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Device, type DeviceOptions, type DeviceSummary, type Enrolment } from '../../client/index.js';
import { unaryCall } from '../../client/rpc.js';
import { initBackend, openBase, type QuantMode } from '../../model/index.js';
import type { CheckInResponse__Output } from '../../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../../proto/generated/fedtune/v1/Coordinator.js';
import { MAX_MESSAGE_BYTES } from '../../proto/limits.js';
import { loadProtos } from '../../proto/load.js';
import { BatchingTrainer } from '../batching-trainer.js';
import { populationAuth, populationIdentityStore } from './identities.js';
import { ShardTable } from './shards.js';

/** What the parent passes to a fleet worker. */
export interface FleetWorkerData {
  readonly worker: number;
  readonly address: string;
  /** The population's master secret (hex). */
  readonly master: string;
  readonly basePath: string;
  readonly tokenizerPath: string;
  readonly quant: QuantMode;
  /** Training text per domain (the shards point into these). */
  readonly domainTexts: readonly string[];
  readonly shards: { readonly segStart: Uint32Array; readonly segDomain: Uint8Array; readonly segOffset: Uint32Array; readonly segLength: Uint32Array };
  /** Scratch folder for working devices' data dirs. */
  readonly scratchDir: string;
  /** gRPC channels shared by this worker's devices. */
  readonly channels: number;
  /** Sampled devices this worker runs at once (all at once under secure aggregation). */
  readonly concurrency: number;
  /** Check-ins this worker has in flight at once. */
  readonly checkInConcurrency: number;
  /** Most devices trained together in one tensor program (1: each device alone, LocalTrainer). */
  readonly batch: number;
  /** How long a cohort's first training request waits for more (BatchingTrainer lingerMs). */
  readonly batchLingerMs: number;
  readonly seed: number;
}

/** One online device's part in a round: it checks in; if the coordinator samples it, it works (and drops out before its upload if `dropsOut`). */
export interface FleetTask {
  readonly index: number;
  readonly deviceId: string;
  readonly dropsOut: boolean;
}

/** The program a request is about, as a device learns it out of band. */
export interface FleetProgram {
  readonly programId: string;
  readonly enrolmentToken: string;
  /** The program's release key (hex). */
  readonly releaseKey: string;
}

/** Parent → worker. */
export type FleetRequest =
  | { readonly type: 'enrol'; readonly program: FleetProgram; readonly indices: readonly number[] }
  | {
      readonly type: 'round';
      readonly program: FleetProgram;
      readonly round: number;
      /** The round the tasks were drawn for: work from any other round is refused (the device leaves). */
      readonly roundId: string;
      /** Run every sampled device at once (secure aggregation: every participant must be in the protocol together). */
      readonly allAtOnce: boolean;
      readonly programBoxPublicKey: string;
      readonly tasks: readonly FleetTask[];
      /** This round's batch size instead of the worker's (a bench compares them in one run). */
      readonly batch?: number;
    }
  | { readonly type: 'stop' };

/** How a device's round ended. */
export type FleetOutcome = 'uploaded' | 'dropped' | 'not-selected' | 'rejected' | 'error';

/** Worker → parent. */
export type FleetReply =
  | { readonly type: 'ready'; readonly baseSha256: string; readonly rssBytes: number }
  | { readonly type: 'enrolled'; readonly programId: string; readonly entries: readonly (readonly [number, string])[]; readonly programBoxPublicKey: string }
  | { readonly type: 'task'; readonly programId: string; readonly round: number; readonly index: number; readonly outcome: FleetOutcome; readonly trainSeconds: number; readonly updateNorm: number; readonly bytesUp: number; readonly bytesDown: number; readonly message: string }
  /** Every task of the worker has had its check-in answered: `sampled` of them got work. */
  | { readonly type: 'checked-in'; readonly programId: string; readonly round: number; readonly checkIns: number; readonly sampled: number; readonly notSampled: number; readonly failed: number; readonly message: string }
  /** Every sampled device of the worker has ended (each reported by a 'task' before this). */
  | { readonly type: 'round-done'; readonly programId: string; readonly round: number; readonly rssBytes: number; readonly busy: number; readonly batched: { readonly cohorts: number; readonly runs: number; readonly largest: number } }
  | { readonly type: 'error'; readonly message: string };

/** Run `fn` over `items`, at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, slot: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async (_, slot) => {
      while (next < items.length) await fn(items[next++], slot);
    }),
  );
}

/** Empty a slot's blob cache, so the next device in it downloads what it needs as a fresh device would. */
function clearBlobs(dir: string): void {
  const blobs = join(dir, 'blobs');
  if (!existsSync(blobs)) return;
  for (const f of readdirSync(blobs)) unlinkSync(join(blobs, f));
}

/** A counting gate: at most `limit` holders at once (Infinity: no limit). */
function gate(limit: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= limit) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

const port = parentPort;
if (port) {
  const d = workerData as FleetWorkerData;
  const send = (m: FleetReply): void => port.postMessage(m);
  const master = Uint8Array.from(Buffer.from(d.master, 'hex'));
  const shards = new ShardTable(d.shards.segStart, d.shards.segDomain, d.shards.segOffset, d.shards.segLength);
  const channelOptions = { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES };
  const channels = Array.from({ length: d.channels }, () => new grpc.Channel(d.address, grpc.credentials.createInsecure(), channelOptions));
  // the bare clients a check-in goes through (one per shared channel)
  const { fedtune } = loadProtos();
  const clients: CoordinatorClient[] = channels.map((channel) => new fedtune.fedtune.v1.Coordinator(d.address, grpc.credentials.createInsecure(), { ...channelOptions, channelOverride: channel }));
  const batchers = new Map<number, BatchingTrainer>();
  const batcher = (k: number): BatchingTrainer | undefined => {
    if (k <= 1) return undefined;
    let b = batchers.get(k);
    if (!b) batchers.set(k, (b = new BatchingTrainer({ maxCohort: k, lingerMs: d.batchLingerMs })));
    return b;
  };
  let stopping = false;
  const live = new Set<AbortController>();
  (async () => {
    await initBackend();
    const { base, tokenizer } = openBase(d.basePath, d.quant, { tokenizerPath: d.tokenizerPath, seed: 1 });
    const model = { sha256: base.sha256, base, tokenizer };
    // data dirs are slots reused by the devices that run in turn (keys are not in them: the identity
    // store holds those); a slot's blob cache is emptied before each device
    const deviceOptions = (p: FleetProgram, index: number, dataDir: string, enrolment: Enrolment | undefined, onEnrol: (e: Enrolment) => void, batching?: BatchingTrainer): DeviceOptions => ({
      address: d.address,
      programId: p.programId,
      dataDir,
      enrolmentToken: p.enrolmentToken,
      text: shards.texts(index, d.domainTexts),
      label: `sim-${index}`,
      seed: d.seed * 1_000_003 + index,
      releaseKey: p.releaseKey,
      identity: populationIdentityStore(master, index, { programId: p.programId, enrolment }, onEnrol),
      model,
      channel: channels[index % channels.length],
      ...(batching ? { trainer: batching.factory } : {}),
      maxCheckIns: 1,
      maxRounds: 1,
      maxWaitMs: 250,
      // a coordinator running a whole cohort's secure aggregation on a loaded machine can take
      // longer than the default 30 s to answer one call; a device waits for it (as a phone would)
      rpcDeadlineMs: 120_000,
      retry: { attempts: 6, baseMs: 100, maxMs: 1000 },
    });
    /** One signed CheckIn for device `index` (what a device not sampled costs); retried on UNAVAILABLE. */
    const checkIn = async (programId: string, t: FleetTask): Promise<CheckInResponse__Output> => {
      const client = clients[t.index % clients.length];
      for (let attempt = 0; ; attempt++) {
        try {
          const req = { programId, adapterVersion: 0 };
          return await unaryCall<CheckInResponse__Output>((o, cb) => client.CheckIn({ ...req, auth: populationAuth(master, t.index, t.deviceId, 'fedtune.v1.Coordinator/CheckIn', req, programId) }, o, cb), 120_000);
        } catch (e) {
          if ((e as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || attempt >= 5) throw e;
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
    };
    send({ type: 'ready', baseSha256: base.sha256, rssBytes: process.memoryUsage().rss });
    port.on('message', (m: FleetRequest) => {
      if (m.type === 'stop') {
        stopping = true;
        for (const ac of live) ac.abort();
        for (const c of channels) c.close();
        base.dispose();
        port.close();
        return;
      }
      if (m.type === 'enrol') {
        const entries: [number, string][] = [];
        let boxKey = '';
        const p = m.program;
        void pool(m.indices, d.checkInConcurrency, async (index) => {
          const device = new Device(deviceOptions(p, index, join(d.scratchDir, `w${d.worker}`, `enrol-${p.programId}`), undefined, (e) => (boxKey = e.programBoxPublicKey)));
          try {
            entries.push([index, await device.enroll()]);
          } finally {
            device.close();
          }
        })
          .then(() => send({ type: 'enrolled', programId: p.programId, entries, programBoxPublicKey: boxKey }))
          .catch((e: unknown) => send({ type: 'error', message: `enrolment: ${(e as Error).message ?? String(e)}` }));
        return;
      }
      const { round } = m;
      const programId = m.program.programId;
      const elu0 = performance.eventLoopUtilization();
      const batching = batcher(m.batch ?? d.batch);
      const batched0 = batching?.stats() ?? { cohorts: 0, runs: 0, largest: 0 };
      // a sampled device's work: the real Device in a free data-dir slot
      const slots: number[] = [];
      let slotCount = 0;
      const working = gate(m.allAtOnce ? Infinity : d.concurrency);
      const work = (t: FleetTask): Promise<void> =>
        working(async () => {
          if (stopping) return;
          const slot = slots.pop() ?? slotCount++;
          const dir = join(d.scratchDir, `w${d.worker}`, `s${slot}`);
          clearBlobs(dir);
          const device = new Device(deviceOptions(m.program, t.index, dir, { deviceId: t.deviceId, programBoxPublicKey: m.programBoxPublicKey, address: d.address }, () => undefined, batching));
          const ac = new AbortController();
          live.add(ac);
          let trainSeconds = 0;
          let updateNorm = Number.NaN;
          let rejected = '';
          let late = false;
          device.progress$.subscribe((e) => {
            // work from another round than the one this device was sampled for: it leaves before training
            if (e.kind === 'training' && e.roundId !== m.roundId && !late) {
              late = true;
              ac.abort();
            }
            // a dropout: the device trains, then goes away before its upload
            if (e.kind === 'training' && t.dropsOut && e.step === e.totalSteps) ac.abort();
            if (e.kind === 'uploaded') {
              trainSeconds = e.trainSeconds;
              updateNorm = e.updateNorm;
            }
            if (e.kind === 'rejected') rejected = e.details;
          });
          let outcome: FleetOutcome = 'error';
          let message = '';
          let summary: DeviceSummary | undefined;
          try {
            summary = await device.run(ac.signal);
            outcome = summary.updatesAccepted > 0 ? 'uploaded' : late ? 'not-selected' : ac.signal.aborted ? 'dropped' : rejected ? 'rejected' : 'error';
            message = rejected || summary.reason;
          } catch (e) {
            outcome = late ? 'not-selected' : ac.signal.aborted ? 'dropped' : 'error';
            message = (e as Error).message ?? String(e);
          } finally {
            live.delete(ac);
            device.close();
            slots.push(slot);
          }
          send({ type: 'task', programId, round, index: t.index, outcome, trainSeconds, updateNorm, bytesUp: summary?.bytesUp ?? 0, bytesDown: summary?.bytesDown ?? 0, message });
        });
      const started: Promise<void>[] = [];
      let sampled = 0;
      let notSampled = 0;
      let failed = 0;
      let firstFailure = '';
      void pool(m.tasks, d.checkInConcurrency, async (t) => {
        if (stopping) return;
        try {
          const res = await checkIn(programId, t);
          if (res.work && res.work.roundId === m.roundId) {
            sampled++;
            started.push(work(t));
          } else {
            notSampled++;
            if (res.work || !/not sampled/.test(res.later?.reason ?? '')) {
              failed++;
              firstFailure ||= res.work ? `device ${t.index} got work from round ${res.work.roundId}, not ${m.roundId}` : `device ${t.index}: ${res.later?.reason}`;
            }
          }
        } catch (e) {
          failed++;
          firstFailure ||= `device ${t.index}'s check-in: ${(e as Error).message ?? String(e)}`;
        }
      })
        .then(async () => {
          send({ type: 'checked-in', programId, round, checkIns: m.tasks.length, sampled, notSampled, failed, message: firstFailure });
          await Promise.all(started);
          const b = batching?.stats() ?? { cohorts: 0, runs: 0, largest: 0 };
          send({ type: 'round-done', programId, round, rssBytes: process.memoryUsage().rss, busy: performance.eventLoopUtilization(elu0).utilization, batched: { cohorts: b.cohorts - batched0.cohorts, runs: b.runs - batched0.runs, largest: b.largest } });
        })
        .catch((e: unknown) => send({ type: 'error', message: `round ${round}: ${(e as Error).message ?? String(e)}` }));
    });
  })().catch((e: unknown) => send({ type: 'error', message: (e as Error).message ?? String(e) }));
}
