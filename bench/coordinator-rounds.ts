/**
 * Coordinator round overhead with many light devices: a real coordinator (gRPC on loopback,
 * SQLite, blob store) over the real stories260K base with a tiny LoRA (rank 2 on wq by
 * default: 1,280 floats), and 1,000 devices in the same process that do no training. Each
 * device has its own Ed25519/X25519 keys, enrols over gRPC, and every round checks in (signed),
 * draws a random update with L2 norm ≤ C, seals it to the program key and uploads it with
 * uploadUpdate (signed header). Devices share a few gRPC channels (one HTTP/2 connection each);
 * at most --concurrency devices are in flight.
 *
 * Everything runs on one event loop, so a round's wall time is the sum of the devices' own
 * work, the coordinator's work and gRPC on both ends. The device-side sections are timed
 * directly; the coordinator's parts are timed by wrapping methods of the running instance
 * (authenticate, the store's device lookup, the nonce map's prune, checkIn, acceptUpdate, the
 * strategy's aggregate, the adapter blob write, the SQLite commit) and tweetnacl's verify and
 * box.open (only the coordinator calls those). Nothing under server/ is changed.
 *
 * Round 1 opens when the coordinator starts, before the devices enrol: its clock starts when
 * the devices are released. Later rounds are timed from their OPEN event (devices are released
 * on it, as if they were pushed the news; real devices would poll) to their COMPLETED event.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/coordinator-rounds.js [--devices 1000]
 *      [--rounds 4] [--rank 2] [--concurrency 64] [--channels 8]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { authFor, enrollRequestFor, unaryCall, uploadUpdate } from '../client/index.js';
import { defaultBasePath, defaultTokenizerPath } from '../model/index.js';
import { seal } from '../privacy/box.js';
import { encodeUpdate, loadProtos } from '../proto/index.js';
import type { CheckInResponse__Output } from '../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../proto/generated/fedtune/v1/Coordinator.js';
import type { EnrollResponse__Output } from '../proto/generated/fedtune/v1/EnrollResponse.js';
import { programSpec, startCoordinator, type RoundEventRecord } from '../server/index.js';

const M = 'fedtune.v1.Coordinator';
const PID = 'bench';
const TOKEN = 'bench-enrolment-token';
const CLIP = 1.0;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '4' },
    rank: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '64' },
    channels: { type: 'string', default: '8' },
  },
});
const posInt = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const DEVICES = posInt('devices', args.devices);
const ROUNDS = posInt('rounds', args.rounds);
const RANK = posInt('rank', args.rank);
const CONCURRENCY = posInt('concurrency', args.concurrency);
const CHANNELS = posInt('channels', args.channels);
const MIN_UPDATES = Math.ceil(DEVICES * 0.95);
const OVER_SELECT = 1.05;

// ---- timing helpers ------------------------------------------------------------------------

/** Accumulated milliseconds and calls per label, reset every round. */
const acc = new Map<string, { ms: number; n: number }>();
function add(label: string, ms: number): void {
  const a = acc.get(label);
  if (a) {
    a.ms += ms;
    a.n += 1;
  } else acc.set(label, { ms, n: 1 });
}
function timed<A extends unknown[], R>(label: string, fn: (...a: A) => R): (...a: A) => R {
  return (...a: A): R => {
    const t = performance.now();
    try {
      return fn(...a);
    } finally {
      add(label, performance.now() - t);
    }
  };
}
const ms = (label: string): number => acc.get(label)?.ms ?? 0;

// Only the coordinator verifies signatures and opens boxes; wrap tweetnacl's (shared) functions.
{
  const sign = nacl.sign as unknown as { detached: typeof nacl.sign.detached };
  const detached = sign.detached;
  const wrapped = timed('device.sign', (m: Uint8Array, sk: Uint8Array) => detached(m, sk)) as unknown as typeof nacl.sign.detached;
  (wrapped as { verify: typeof nacl.sign.detached.verify }).verify = timed('coord.verify', detached.verify);
  sign.detached = wrapped;
  // the coordinator opens with a cached shared key (nacl.box.open.after): keep that property, timed
  const box = nacl.box as unknown as { open: typeof nacl.box.open };
  const open = box.open;
  box.open = Object.assign(timed('coord.boxOpen', open) as typeof nacl.box.open, { after: timed('coord.boxOpen', open.after) as typeof open.after });
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = (b: number): number => b / 2 ** 20;
function mem(): { rss: number; heap: number } {
  const m = process.memoryUsage();
  return { rss: MiB(m.rss), heap: MiB(m.heapUsed) };
}
function settledMem(): { rss: number; heap: number } {
  gc();
  gc();
  return mem();
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** A random update with L2 norm uniform in [0.5·C, 0.99·C]. */
function randomUpdate(n: number): Float32Array {
  const u = new Float32Array(n);
  let ss = 0;
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - Math.random()));
    const th = 2 * Math.PI * Math.random();
    u[i] = r * Math.cos(th);
    if (i + 1 < n) u[i + 1] = r * Math.sin(th);
  }
  for (let i = 0; i < n; i++) ss += u[i] * u[i];
  const k = (CLIP * (0.5 + 0.49 * Math.random())) / Math.sqrt(ss);
  for (let i = 0; i < n; i++) u[i] *= k;
  return u;
}

// ---- the run ---------------------------------------------------------------------------------

interface Dev {
  id: string;
  sign: nacl.SignKeyPair;
  box: nacl.BoxKeyPair;
  programKey: Uint8Array;
  client: CoordinatorClient;
}

async function main(): Promise<void> {
  const machine = `${(await import('node:os')).cpus().length} cores, load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')} at start`;
  const baseline = settledMem();
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-bench-rounds-'));
  const spec = programSpec({
    id: PID,
    base: defaultBasePath(),
    tokenizer: defaultTokenizerPath(),
    enrolmentToken: TOKEN,
    lora: { rank: RANK, alpha: 2 * RANK, targets: ['wq'], seed: 1 },
    training: { steps: 20, batchSize: 8 },
    cohortSize: DEVICES,
    minUpdates: MIN_UPDATES,
    overSelect: OVER_SELECT,
    rounds: ROUNDS,
    roundDeadlineMs: 600_000,
    retryDelayMs: 500,
    dp: { mode: 'none', clipNorm: CLIP },
  });
  const running = await startCoordinator({ dataDir: dir, port: 0, programs: [spec] });
  const c = running.coordinator;
  const program = c.program(PID);
  const runner = program.runner;
  const n = program.updateLength;

  // instrument the running coordinator's instance (no server/ file is touched)
  const inst = <O extends object, K extends keyof O>(o: O, k: K, label: string): void => {
    const f = o[k] as unknown as (...a: unknown[]) => unknown;
    (o as Record<K, unknown>)[k] = timed(label, f.bind(o));
  };
  inst(c, 'authenticate', 'coord.authenticate');
  inst(c.store, 'device', 'coord.sqliteDevice');
  inst(c.store, 'completeRound', 'coord.sqliteCommit');
  inst(c.blobs, 'put', 'coord.blobPut');
  inst(c, 'acceptUpdate', 'coord.acceptUpdate');
  inst(runner, 'checkIn', 'coord.checkIn');
  inst(c.store, 'latestVersion', 'coord.sqliteLatestVersion');
  inst((c as unknown as { verifier: { prune(now: number): void } }).verifier, 'prune', 'coord.noncePrune');
  // signatures are verified with node:crypto since the first run of this bench
  inst((c as unknown as { verifier: { ed25519Verify(...a: unknown[]): boolean } }).verifier, 'ed25519Verify', 'coord.verify');
  inst((runner as unknown as { strategy: { aggregate(...a: unknown[]): unknown } }).strategy, 'aggregate', 'coord.aggregate');

  const events: { e: RoundEventRecord; t: number }[] = [];
  const waiters: { test: (e: RoundEventRecord) => boolean; resolve: (e: { e: RoundEventRecord; t: number }) => void }[] = [];
  runner.events$.subscribe((e) => {
    const rec = { e, t: performance.now() };
    events.push(rec);
    for (const w of waiters.splice(0)) if (w.test(e)) w.resolve(rec);
    else waiters.push(w);
  });
  const nextEvent = (test: (e: RoundEventRecord) => boolean): Promise<{ e: RoundEventRecord; t: number }> =>
    new Promise((resolve) => {
      const seen = events.find((r) => test(r.e));
      if (seen) resolve(seen);
      else waiters.push({ test, resolve });
    });
  const afterCoordinator = settledMem();

  // devices: keys first (to size their state), then enrol over gRPC
  const keys = Array.from({ length: DEVICES }, () => ({ sign: nacl.sign.keyPair(), box: nacl.box.keyPair() }));
  const afterKeys = settledMem();
  const { fedtune } = loadProtos();
  const clients: CoordinatorClient[] = Array.from({ length: CHANNELS }, () => new fedtune.fedtune.v1.Coordinator(running.address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const devices: Dev[] = new Array(DEVICES);
  const tEnrol = performance.now();
  await pool(keys, CONCURRENCY, async (k, i) => {
    const client = clients[i % CHANNELS];
    const res = await unaryCall<EnrollResponse__Output>(
      (o, cb) => client.Enroll(enrollRequestFor(PID, TOKEN, k.sign, k.box.publicKey, `light-${i}`), o, cb),
      60_000,
    );
    devices[i] = { id: res.deviceId, sign: k.sign, box: k.box, programKey: Uint8Array.from(res.programBoxPublicKey), client };
  });
  const enrolS = (performance.now() - tEnrol) / 1000;
  const afterEnrol = settledMem();

  interface RoundRow {
    round: number;
    wallS: number;
    deviceS: number;
    beyondS: number;
    aggMs: number;
    updates: number;
    failedDevices: number;
    refused: number;
    mbReceived: number;
    rssPeak: number;
    heapPeak: number;
    cpu: number;
    elu: number;
    parts: Record<string, number>;
  }
  const rows: RoundRow[] = [];
  let version = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = round === 1 ? performance.now() : (await nextEvent((e) => e.state === 'OPEN' && e.roundNumber === round)).t;
    const done = nextEvent((e) => e.roundNumber === round && (e.state === 'COMPLETED' || e.state === 'FAILED'));
    acc.clear();
    let peak = mem();
    const sampler = setInterval(() => {
      const m = mem();
      peak = { rss: Math.max(peak.rss, m.rss), heap: Math.max(peak.heap, m.heap) };
    }, 50);
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    let refused = 0;
    let deviceMs = 0;
    await pool(devices, CONCURRENCY, async (d) => {
      let t = performance.now();
      const req = { programId: PID, adapterVersion: version };
      const auth = authFor(`${M}/CheckIn`, req, d.id, d.sign);
      deviceMs += performance.now() - t;
      let res: CheckInResponse__Output;
      try {
        res = await unaryCall<CheckInResponse__Output>((o, cb) => d.client.CheckIn({ ...req, auth }, o, cb), 60_000);
      } catch {
        refused++;
        return;
      }
      const work = res.work;
      if (!work) {
        refused++;
        return;
      }
      t = performance.now();
      const sealed = seal(encodeUpdate(randomUpdate(n)), d.programKey, d.box);
      // uploadUpdate's synchronous part: SHA-256 of the payload, the signed header, the stream's start
      const p = uploadUpdate(d.client, d.id, d.sign, { programId: PID, roundId: work.roundId, numExamples: 8, encoding: 'f32', unclipped: false }, sealed, { deadlineMs: 60_000 });
      deviceMs += performance.now() - t;
      try {
        await p;
      } catch {
        refused++;
      }
    });
    const end = await done;
    const agg = events.find((r) => r.e.roundNumber === round && r.e.state === 'AGGREGATING');
    clearInterval(sampler);
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    const wallS = (end.t - t0) / 1000;
    version = end.e.adapterVersion;
    const parts: Record<string, number> = {};
    for (const [k, v] of acc) parts[k] = v.ms;
    rows.push({
      round,
      wallS,
      deviceS: deviceMs / 1000,
      beyondS: wallS - deviceMs / 1000,
      aggMs: agg && end.e.state === 'COMPLETED' ? end.t - agg.t : Number.NaN,
      updates: end.e.updatesReceived,
      failedDevices: end.e.devicesFailed,
      refused,
      mbReceived: end.e.bytesReceived / 1e6,
      rssPeak: peak.rss,
      heapPeak: peak.heap,
      cpu: (cpu.user + cpu.system) / 1e6 / wallS,
      elu: elu.utilization,
      parts,
    });
    if (end.e.state !== 'COMPLETED') console.error(`round ${round}: ${end.e.state} — ${end.e.message}`);
  }
  const afterRounds = mem();
  const afterRoundsGc = settledMem();
  for (const cl of clients) cl.close();
  await running.shutdown(2000);
  rmSync(dir, { recursive: true, force: true });

  // ---- report ----
  const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
  console.log(`\n${DEVICES} devices, ${ROUNDS} rounds, LoRA rank ${RANK} on wq (${n} floats, ${4 * n + 40} sealed bytes per update), cohort ${DEVICES}, minUpdates ${MIN_UPDATES}, overSelect ${OVER_SELECT}, clip ${CLIP}, ${CHANNELS} gRPC channels, ${CONCURRENCY} devices in flight; ${machine}; enrolment ${f(enrolS)} s\n`);
  console.log('| round | wall s | device compute s | beyond device s | aggregate phase ms | updates | updates/s | payload MB | peak RSS MiB | peak heap MiB | CPU (cores) | event-loop busy |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.round}${r.round === 1 ? '*' : ''} | ${f(r.wallS)} | ${f(r.deviceS)} | ${f(r.beyondS)} | ${f(r.aggMs, 1)} | ${r.updates} | ${f(r.updates / r.wallS, 0)} | ${f(r.mbReceived, 2)} | ${f(r.rssPeak, 0)} | ${f(r.heapPeak, 0)} | ${f(r.cpu)} | ${f(r.elu * 100, 0)}% |`);
  }
  const steady = rows.length > 1 ? rows.slice(1) : rows;
  const mean = (sel: (r: RoundRow) => number): number => steady.reduce((s, r) => s + sel(r), 0) / steady.length;
  const part = (k: string) => mean((r) => r.parts[k] ?? 0) / 1000;
  const coordAuth = part('coord.authenticate');
  const coordAccept = part('coord.acceptUpdate');
  const coordAggPhase = part('coord.aggregate') + part('coord.blobPut') + part('coord.sqliteCommit');
  const coordCheckIn = part('coord.checkIn');
  const wall = mean((r) => r.wallS);
  const device = mean((r) => r.deviceS);
  const coordMeasured = coordAuth + coordAccept + coordCheckIn;
  console.log(`\n\\* round 1 is timed from the devices' release (it opened before they enrolled) and includes JIT warm-up; means below are over rounds ${steady[0].round}–${steady[steady.length - 1].round}.\n`);
  console.log('| where a round\'s time goes (mean per round) | s | share of wall |');
  console.log('|---|---|---|');
  const line = (what: string, s: number): void => console.log(`| ${what} | ${f(s, 3)} | ${f((100 * s) / wall, 1)}% |`);
  line('devices: check-in signing, update, sealing, upload signing (Ed25519 sign alone: ' + f(part('device.sign'), 2) + ' s)', device);
  line('coordinator: authenticate (2 per device)', coordAuth);
  line('  of which Ed25519 verify (node:crypto, cached keys)', part('coord.verify'));
  line('  of which SQLite device lookup (statement prepared per call)', part('coord.sqliteDevice'));
  line('  of which nonce-map prune', part('coord.noncePrune'));
  line('coordinator: runner.checkIn', coordCheckIn);
  line('  of which SQLite latestVersion (statement prepared per call)', part('coord.sqliteLatestVersion'));
  line('coordinator: acceptUpdate (incl. the closing aggregate phase)', coordAccept);
  line('  of which nacl box open (X25519 + XSalsa20-Poly1305)', part('coord.boxOpen'));
  line('  of which aggregate (FedAvg over all deltas)', part('coord.aggregate'));
  line('  of which adapter blob write (fsync)', part('coord.blobPut'));
  line('  of which SQLite commit (version + round, synchronous=FULL)', part('coord.sqliteCommit'));
  line('rest: gRPC/HTTP2 and protobuf on both ends, signing payloads, SHA-256, handler glue, GC, idle', wall - device - coordMeasured);
  console.log('\n| memory (process: coordinator + devices) | RSS MiB | heap used MiB |');
  console.log('|---|---|---|');
  const mrow = (what: string, m: { rss: number; heap: number }): void => console.log(`| ${what} | ${f(m.rss, 0)} | ${f(m.heap, 1)} |`);
  mrow('baseline (modules loaded, before the coordinator)', baseline);
  mrow('coordinator started', afterCoordinator);
  mrow(`+ ${DEVICES} device key sets`, afterKeys);
  mrow(`+ enrolled over ${CHANNELS} channels`, afterEnrol);
  mrow('peak during rounds', { rss: Math.max(...rows.map((r) => r.rssPeak)), heap: Math.max(...rows.map((r) => r.heapPeak)) });
  mrow('after the rounds', afterRounds);
  mrow('after the rounds, after GC', afterRoundsGc);
  const summary = {
    bench: 'coordinator-rounds',
    devices: DEVICES,
    rounds: ROUNDS,
    rank: RANK,
    floats: n,
    concurrency: CONCURRENCY,
    channels: CHANNELS,
    enrolS: +enrolS.toFixed(2),
    wallS: +wall.toFixed(3),
    deviceComputeS: +device.toFixed(3),
    beyondDeviceS: +(wall - device).toFixed(3),
    coordinatorMeasuredS: +coordMeasured.toFixed(3),
    verifyS: +part('coord.verify').toFixed(3),
    boxOpenS: +part('coord.boxOpen').toFixed(3),
    aggregatePhaseMs: +mean((r) => r.aggMs).toFixed(1),
    aggregateMs: +(part('coord.aggregate') * 1000).toFixed(1),
    commitMs: +(part('coord.sqliteCommit') * 1000).toFixed(1),
    blobPutMs: +(part('coord.blobPut') * 1000).toFixed(1),
    updatesPerS: +mean((r) => r.updates / r.wallS).toFixed(1),
    bytesPerRound: Math.round(mean((r) => r.mbReceived) * 1e6),
    refused: rows.reduce((s, r) => s + r.refused, 0),
    rssBaselineMiB: +baseline.rss.toFixed(0),
    rssPeakMiB: +Math.max(...rows.map((r) => r.rssPeak)).toFixed(0),
    deviceKeysHeapMiB: +(afterKeys.heap - afterCoordinator.heap).toFixed(2),
    coordAggregatePhaseS: +coordAggPhase.toFixed(3),
    perRound: rows.map((r) => ({ round: r.round, wallS: +r.wallS.toFixed(2), verifyS: +((r.parts['coord.verify'] ?? 0) / 1000).toFixed(2), pruneS: +((r.parts['coord.noncePrune'] ?? 0) / 1000).toFixed(3), sqliteS: +(((r.parts['coord.sqliteDevice'] ?? 0) + (r.parts['coord.sqliteLatestVersion'] ?? 0)) / 1000).toFixed(3) })),
    machine,
  };
  console.log(`\n${JSON.stringify(summary)}`);
}

await main();
