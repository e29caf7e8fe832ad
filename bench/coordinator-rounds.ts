/**
 * Coordinator round overhead with many light devices: a real coordinator (gRPC on loopback,
 * SQLite, blob store) over the real stories260K base with a small LoRA (rank 2 on wq by default:
 * 1,280 floats; `--targets all` puts it on all seven matrices: 11,560 floats at rank 2), and
 * --devices light devices that do no training. The devices run in a child process of their own
 * (bench/coordinator-devices.ts), so this process holds only the coordinator: its CPU time, its
 * event loop's busy time and its RSS per round are the coordinator's alone. Each device has its
 * own Ed25519/X25519 keys, enrols over gRPC, and every round checks in (signed), draws a random
 * update with L2 norm ≤ C, seals it to the program key and uploads it with uploadUpdate (signed
 * header). Devices share a few gRPC channels (one HTTP/2 connection each); at most
 * --concurrency devices are in flight.
 *
 * The coordinator's parts are timed by wrapping methods of the running instance (authenticate,
 * checkIn, acceptUpdate, the strategy's aggregate, the adapter blob write, the SQLite commit,
 * the verifier's Ed25519 check) and tweetnacl's box.open.after (only the coordinator opens boxes
 * in this process). Nothing under server/ is changed by the bench.
 *
 * Round 1 opens when the coordinator starts, before the devices enrol: its clock starts when
 * the devices are released. Later rounds are timed from their OPEN event (the devices are
 * released on it, as if they were pushed the news; real devices would poll) to COMPLETED.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/coordinator-rounds.js [--devices 1000]
 *      [--rounds 4] [--rank 2] [--targets wq|all|wq,wv,…] [--concurrency 64] [--channels 8]
 *      [--cpu-prof]   (profiles this process — the coordinator — during the rounds, into the temp folder)
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import nacl from 'tweetnacl';
import { defaultBasePath, defaultTokenizerPath } from '../model/index.js';
import { MATRIX_NAMES, type MatrixName } from '../model/weights.js';
import { programSpec, startCoordinator, type RoundEventRecord } from '../server/index.js';
import type { FleetSettings } from './coordinator-devices.js';

const PID = 'bench';
const TOKEN = 'bench-enrolment-token';
const CLIP = 1.0;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '4' },
    rank: { type: 'string', default: '2' },
    targets: { type: 'string', default: 'wq' },
    concurrency: { type: 'string', default: '64' },
    channels: { type: 'string', default: '8' },
    'cpu-prof': { type: 'boolean', default: false },
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
const TARGETS: MatrixName[] = args.targets === 'all' ? [...MATRIX_NAMES] : ((args.targets ?? 'wq').split(',') as MatrixName[]);
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
    let out: R | undefined;
    try {
      out = fn(...a);
      return out;
    } finally {
      // the state store is asynchronous: its calls count until they settle (queueing behind a transaction included)
      if (out instanceof Promise) out.then(() => add(label, performance.now() - t), () => add(label, performance.now() - t));
      else add(label, performance.now() - t);
    }
  };
}

// Only the coordinator opens boxes in this process: time tweetnacl's box.open (and .after, which it uses).
{
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

// ---- the run ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  const machine = `${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start`;
  const baseline = settledMem();
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-bench-rounds-'));
  const spec = programSpec({
    id: PID,
    base: defaultBasePath(),
    tokenizer: defaultTokenizerPath(),
    enrolmentToken: TOKEN,
    lora: { rank: RANK, alpha: 2 * RANK, targets: TARGETS, seed: 1 },
    training: { steps: 20, batchSize: 8 },
    cohortSize: DEVICES,
    minUpdates: MIN_UPDATES,
    overSelect: OVER_SELECT,
    rounds: ROUNDS,
    roundDeadlineMs: 900_000,
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
  inst(c.store, 'completeRound', 'coord.sqliteCommit');
  inst(c.blobs, 'put', 'coord.blobPut');
  inst(c, 'acceptUpdate', 'coord.acceptUpdate');
  inst(runner, 'checkIn', 'coord.checkIn');
  inst((c as unknown as { verifier: { ed25519Verify(...a: unknown[]): boolean } }).verifier, 'ed25519Verify', 'coord.verify');
  // each round's strategy comes from the runner's planner: time the aggregate of every planned one
  {
    const planner = (runner as unknown as { planner: { plan(n: number): { strategy: { aggregate(...a: unknown[]): unknown } } } }).planner;
    const plan = planner.plan.bind(planner);
    planner.plan = (round: number) => {
      const p = plan(round);
      inst(p.strategy, 'aggregate', 'coord.aggregate');
      return p;
    };
  }

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

  // the device fleet: a child process (bench/coordinator-devices.ts)
  const settings: FleetSettings = { address: running.address, programId: PID, token: TOKEN, devices: DEVICES, concurrency: CONCURRENCY, channels: CHANNELS, floats: n, clip: CLIP };
  const child = fork(fileURLToPath(new URL('./coordinator-devices.js', import.meta.url)), [JSON.stringify(settings)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  type FleetMsg = { t: 'enrolled'; s: number } | { t: 'roundDone'; deviceS: number; cpuS: number; refused: number };
  const inbox: FleetMsg[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (m: FleetMsg) => {
    inbox.push(m);
    wake?.();
  });
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) console.error(`device fleet exited with code ${code}`);
  });
  const fleet = async <T extends FleetMsg['t']>(t: T): Promise<Extract<FleetMsg, { t: T }>> => {
    for (;;) {
      const i = inbox.findIndex((m) => m.t === t);
      if (i >= 0) return inbox.splice(i, 1)[0] as Extract<FleetMsg, { t: T }>;
      await new Promise<void>((r) => (wake = r));
    }
  };
  const enrolS = (await fleet('enrolled')).s;
  const afterEnrol = settledMem();

  const prof = args['cpu-prof'] ? new Session() : undefined;
  if (prof) {
    prof.connect();
    await prof.post('Profiler.enable');
    await prof.post('Profiler.start');
  }

  interface RoundRow {
    round: number;
    wallS: number;
    deviceS: number;
    deviceCpuS: number;
    coordCpuS: number;
    coordBusyS: number;
    aggMs: number;
    updates: number;
    refused: number;
    mbReceived: number;
    rssPeak: number;
    heapPeak: number;
    parts: Record<string, number>;
  }
  const rows: RoundRow[] = [];
  let version = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    const t0 = round === 1 ? performance.now() : (await nextEvent((e) => e.state === 'OPEN' && e.roundNumber === round)).t;
    const done = nextEvent((e) => e.roundNumber === round && (e.state === 'COMPLETED' || e.state === 'FAILED'));
    acc.clear();
    let peak = mem();
    // sampling costs the coordinator's loop (process.memoryUsage() ~1 ms a call): the heap every
    // 250 ms, and RSS from the kernel's high-water mark (getrusage maxrss) at the round's end
    const sampler = setInterval(() => {
      peak = { rss: peak.rss, heap: Math.max(peak.heap, MiB(getHeapStatistics().used_heap_size)) };
    }, 250);
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    child.send({ t: 'round', version });
    const end = await done;
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    const dev = await fleet('roundDone');
    const agg = events.find((r) => r.e.roundNumber === round && r.e.state === 'AGGREGATING');
    clearInterval(sampler);
    const m = mem();
    peak = { rss: Math.max(m.rss, process.resourceUsage().maxRSS / 1024), heap: Math.max(peak.heap, m.heap) };
    const wallS = (end.t - t0) / 1000;
    version = end.e.adapterVersion;
    const parts: Record<string, number> = {};
    for (const [k, v] of acc) parts[k] = v.ms;
    rows.push({
      round,
      wallS,
      deviceS: dev.deviceS,
      deviceCpuS: dev.cpuS,
      coordCpuS: (cpu.user + cpu.system) / 1e6,
      coordBusyS: elu.active / 1000,
      aggMs: agg && end.e.state === 'COMPLETED' ? end.t - agg.t : Number.NaN,
      updates: end.e.updatesReceived,
      refused: dev.refused,
      mbReceived: end.e.bytesReceived / 1e6,
      rssPeak: peak.rss,
      heapPeak: peak.heap,
      parts,
    });
    if (end.e.state !== 'COMPLETED') console.error(`round ${round}: ${end.e.state} — ${end.e.message}`);
    console.error(`round ${round}: wall ${wallS.toFixed(2)} s, coordinator CPU ${rows[rows.length - 1].coordCpuS.toFixed(2)} s`);
  }
  if (prof) {
    const { profile } = await prof.post('Profiler.stop');
    const out = join(tmpdir(), `coordinator-rounds-${process.pid}.cpuprofile`);
    writeFileSync(out, JSON.stringify(profile));
    console.error(`CPU profile of the coordinator process: ${out}`);
    prof.disconnect();
  }
  const afterRounds = mem();
  const afterRoundsGc = settledMem();
  child.send({ t: 'exit' });
  await running.shutdown(2000);
  rmSync(dir, { recursive: true, force: true });

  // ---- report ----
  const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
  console.log(`\n${DEVICES} devices, ${ROUNDS} rounds, LoRA rank ${RANK} on ${TARGETS.join(',')} (${n} floats, ${4 * n + 40} sealed bytes per update), cohort ${DEVICES}, minUpdates ${MIN_UPDATES}, overSelect ${OVER_SELECT}, clip ${CLIP}, ${CHANNELS} gRPC channels, ${CONCURRENCY} devices in flight, devices in a child process, round deadline 900 s (round 1 opens before the enrolment); ${machine}; enrolment ${f(enrolS)} s\n`);
  console.log('| round | wall s | devices: compute s | devices: process CPU s | coordinator: event loop busy s | coordinator: CPU s | aggregate phase ms | updates | updates/s | payload MB | coordinator peak RSS so far MiB | coordinator peak heap MiB |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.round}${r.round === 1 ? '*' : ''} | ${f(r.wallS)} | ${f(r.deviceS)} | ${f(r.deviceCpuS)} | ${f(r.coordBusyS)} | ${f(r.coordCpuS)} | ${f(r.aggMs, 1)} | ${r.updates} | ${f(r.updates / r.wallS, 0)} | ${f(r.mbReceived, 2)} | ${f(r.rssPeak, 0)} | ${f(r.heapPeak, 0)} |`);
  }
  const steady = rows.length > 1 ? rows.slice(1) : rows;
  const mean = (sel: (r: RoundRow) => number): number => steady.reduce((s, r) => s + sel(r), 0) / steady.length;
  const part = (k: string): number => mean((r) => r.parts[k] ?? 0) / 1000;
  const busy = mean((r) => r.coordBusyS);
  console.log(`\n\\* round 1 is timed from the devices' release (it opened before they enrolled) and includes JIT warm-up; means below are over rounds ${steady[0].round}–${steady[steady.length - 1].round}.\n`);
  console.log("| where the coordinator's busy time goes (mean per round) | s | share of busy |");
  console.log('|---|---|---|');
  const line = (what: string, s: number): void => console.log(`| ${what} | ${f(s, 3)} | ${f((100 * s) / busy, 1)}% |`);
  line('coordinator event loop busy (its time beyond the devices\' own work)', busy);
  line('  authenticate (2 per device)', part('coord.authenticate'));
  line('    of which Ed25519 verify (node:crypto)', part('coord.verify'));
  line('  runner.checkIn', part('coord.checkIn'));
  line('  acceptUpdate (incl. the closing aggregate phase)', part('coord.acceptUpdate'));
  line('    of which box open (XSalsa20-Poly1305)', part('coord.boxOpen'));
  line('    of which aggregate (FedAvg mean + strategy)', part('coord.aggregate'));
  line('    of which adapter blob write (fsync)', part('coord.blobPut'));
  line('    of which SQLite commit', part('coord.sqliteCommit'));
  line('  rest: gRPC/HTTP2 server, protobuf decode and wire checks, SHA-256, handler glue, GC', busy - part('coord.authenticate') - part('coord.checkIn') - part('coord.acceptUpdate'));
  console.log('\n| memory (coordinator process only) | RSS MiB | heap used MiB |');
  console.log('|---|---|---|');
  const mrow = (what: string, m: { rss: number; heap: number }): void => console.log(`| ${what} | ${f(m.rss, 0)} | ${f(m.heap, 1)} |`);
  mrow('baseline (modules loaded, before the coordinator)', baseline);
  mrow('coordinator started', afterCoordinator);
  mrow(`+ ${DEVICES} devices enrolled over ${CHANNELS} channels`, afterEnrol);
  mrow('peak during rounds', { rss: Math.max(...rows.map((r) => r.rssPeak)), heap: Math.max(...rows.map((r) => r.heapPeak)) });
  mrow('after the rounds', afterRounds);
  mrow('after the rounds, after GC', afterRoundsGc);
  const summary = {
    bench: 'coordinator-rounds',
    devices: DEVICES,
    rounds: ROUNDS,
    rank: RANK,
    targets: TARGETS,
    floats: n,
    concurrency: CONCURRENCY,
    channels: CHANNELS,
    enrolS: +enrolS.toFixed(2),
    wallS: +mean((r) => r.wallS).toFixed(3),
    deviceComputeS: +mean((r) => r.deviceS).toFixed(3),
    coordinatorBusyS: +busy.toFixed(3),
    coordinatorCpuS: +mean((r) => r.coordCpuS).toFixed(3),
    verifyS: +part('coord.verify').toFixed(3),
    boxOpenS: +part('coord.boxOpen').toFixed(3),
    aggregatePhaseMs: +mean((r) => r.aggMs).toFixed(1),
    updatesPerS: +mean((r) => r.updates / r.wallS).toFixed(1),
    bytesPerRound: Math.round(mean((r) => r.mbReceived) * 1e6),
    refused: rows.reduce((s, r) => s + r.refused, 0),
    rssBaselineMiB: +baseline.rss.toFixed(0),
    rssPeakMiB: +Math.max(...rows.map((r) => r.rssPeak)).toFixed(0),
    machine,
  };
  console.log(`\n${JSON.stringify(summary)}`);
}

await main();
