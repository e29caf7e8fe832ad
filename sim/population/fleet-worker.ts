/**
 * Worker-thread entry hosting part of a simulated population. It opens the base once and lends
 * it to every device it runs (Device option `model`), shares a few gRPC channels among them,
 * and keeps no per-device state between rounds: a device exists only while it enrols or works
 * on a round — the real Device library against the real coordinator, with keys derived from the
 * population's master secret, its shard's text cut from the domains' text, and a scratch data
 * dir removed afterwards. Messages: {@link FleetRequest} in, {@link FleetReply} out.
 */
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { Device, type DeviceOptions, type DeviceSummary, type Enrolment } from '../../client/index.js';
import { initBackend, openBase, type QuantMode } from '../../model/index.js';
import { MAX_MESSAGE_BYTES } from '../../proto/limits.js';
import { populationIdentityStore } from './identities.js';
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
  /** Devices this worker runs at once. */
  readonly concurrency: number;
  readonly seed: number;
}

/** One device's work in a round. */
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
      /** Run every task at once (secure aggregation: every participant must be in the protocol together). */
      readonly allAtOnce: boolean;
      readonly programBoxPublicKey: string;
      readonly tasks: readonly FleetTask[];
    }
  | { readonly type: 'stop' };

/** How a device's round ended. */
export type FleetOutcome = 'uploaded' | 'dropped' | 'not-selected' | 'rejected' | 'error';

/** Worker → parent. */
export type FleetReply =
  | { readonly type: 'ready'; readonly baseSha256: string; readonly rssBytes: number }
  | { readonly type: 'enrolled'; readonly programId: string; readonly entries: readonly (readonly [number, string])[]; readonly programBoxPublicKey: string }
  | { readonly type: 'task'; readonly programId: string; readonly round: number; readonly index: number; readonly outcome: FleetOutcome; readonly trainSeconds: number; readonly updateNorm: number; readonly bytesUp: number; readonly bytesDown: number; readonly message: string }
  | { readonly type: 'checked-in'; readonly programId: string; readonly round: number; readonly index: number }
  | { readonly type: 'round-done'; readonly programId: string; readonly round: number; readonly rssBytes: number; readonly busy: number }
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

const port = parentPort;
if (port) {
  const d = workerData as FleetWorkerData;
  const send = (m: FleetReply): void => port.postMessage(m);
  const master = Uint8Array.from(Buffer.from(d.master, 'hex'));
  const shards = new ShardTable(d.shards.segStart, d.shards.segDomain, d.shards.segOffset, d.shards.segLength);
  const channelOptions = { 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES };
  const channels = Array.from({ length: d.channels }, () => new grpc.Channel(d.address, grpc.credentials.createInsecure(), channelOptions));
  let stopping = false;
  const live = new Set<AbortController>();
  (async () => {
    await initBackend();
    const { base, tokenizer } = openBase(d.basePath, d.quant, { tokenizerPath: d.tokenizerPath, seed: 1 });
    const model = { sha256: base.sha256, base, tokenizer };
    // data dirs are slots reused by the devices that run in turn (keys are not in them: the identity
    // store holds those); a slot's blob cache is emptied before each device
    const deviceOptions = (p: FleetProgram, index: number, dataDir: string, enrolment: Enrolment | undefined, onEnrol: (e: Enrolment) => void): DeviceOptions => ({
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
      maxCheckIns: 1,
      maxRounds: 1,
      maxWaitMs: 250,
      retry: { attempts: 6, baseMs: 100, maxMs: 1000 },
    });
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
        void pool(m.indices, d.concurrency * 4, async (index) => {
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
      const elu0 = performance.eventLoopUtilization();
      void pool(m.tasks, m.allAtOnce ? m.tasks.length : d.concurrency, async (t, slot) => {
        if (stopping) return;
        const dir = join(d.scratchDir, `w${d.worker}`, `s${slot}`);
        clearBlobs(dir);
        const device = new Device(deviceOptions(m.program, t.index, dir, { deviceId: t.deviceId, programBoxPublicKey: m.programBoxPublicKey, address: d.address }, () => undefined));
        const ac = new AbortController();
        live.add(ac);
        let trainSeconds = 0;
        let updateNorm = Number.NaN;
        let rejected = '';
        let late = false;
        device.progress$.subscribe((e) => {
          // work from a later round than the one this device was drawn for: it leaves before training
          if (e.kind === 'training' && e.roundId !== m.roundId && !late) {
            late = true;
            ac.abort();
          }
          // a dropout: the device trains, then goes away before its upload
          if (e.kind === 'training' && e.step === 1) send({ type: 'checked-in', programId: m.program.programId, round, index: t.index });
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
          outcome = summary.updatesAccepted > 0 ? 'uploaded' : late ? 'not-selected' : ac.signal.aborted ? 'dropped' : rejected ? 'rejected' : summary.roundsJoined > 0 ? 'error' : 'not-selected';
          message = rejected || summary.reason;
        } catch (e) {
          outcome = late ? 'not-selected' : ac.signal.aborted ? 'dropped' : 'error';
          message = (e as Error).message ?? String(e);
        } finally {
          live.delete(ac);
          device.close();
        }
        send({ type: 'task', programId: m.program.programId, round, index: t.index, outcome, trainSeconds, updateNorm, bytesUp: summary?.bytesUp ?? 0, bytesDown: summary?.bytesDown ?? 0, message });
      })
        .then(() => send({ type: 'round-done', programId: m.program.programId, round, rssBytes: process.memoryUsage().rss, busy: performance.eventLoopUtilization(elu0).utilization }))
        .catch((e: unknown) => send({ type: 'error', message: `round ${round}: ${(e as Error).message ?? String(e)}` }));
    });
  })().catch((e: unknown) => send({ type: 'error', message: (e as Error).message ?? String(e) }));
}
