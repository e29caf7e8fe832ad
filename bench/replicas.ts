/**
 * Coordinator replicas sharing one program's rounds on a real PostgreSQL (issue 13 phase 2b): 1,
 * 2 and 3 replicas, each a process of its own (bench/replica-child.ts), and --devices light
 * devices (bench/coordinator-devices.ts: signed check-ins, sealed uploads, no training) in
 * another process, their gRPC channels spread over the replicas. Per configuration: a fresh
 * schema in one throwaway PostgreSQL server (test/support/postgres.ts; fsync off, as in the
 * tests), --rounds rounds, each timed from the devices' release (once the round's plan is in the
 * database) to the round's completion in the database.
 *
 * Reported per round (means over rounds 2…, round 1 includes warm-up): wall time, updates/s,
 * every replica's CPU seconds (and per accepted update), the replicas' RSS, and what PostgreSQL
 * wrote: rows inserted + updated (pg_stat_database, read after its stats flush) and WAL bytes
 * (pg_current_wal_lsn). PostgreSQL's own CPU is not counted in the replicas' CPU. The machine's
 * cores are shared by the devices, the replicas and PostgreSQL: on 2 cores the wall time cannot
 * show scaling, the CPU per update can.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/replicas.js [--devices 2000] [--rounds 3] [--floats 1280]
 *      [--replicas 1,2,3] [--concurrency 64] [--channels 6]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { defaultBasePath, defaultTokenizerPath } from '../model/index.js';
import { openStateStore, type StateStore } from '../server/index.js';
import { startPostgres } from '../test/support/postgres.js';
import type { FleetSettings } from './coordinator-devices.js';
import type { ReplicaSettings } from './replica-child.js';

const PID = 'bench';
const TOKEN = 'bench-enrolment-token';
const CLIP = 1.0;

const { values: args } = parseArgs({
  options: {
    devices: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '3' },
    replicas: { type: 'string', default: '1,2,3' },
    concurrency: { type: 'string', default: '64' },
    channels: { type: 'string', default: '6' },
    floats: { type: 'string', default: '1280' },
  },
});
const posInt = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const DEVICES = posInt('devices', args.devices);
const ROUNDS = posInt('rounds', args.rounds);
const CONCURRENCY = posInt('concurrency', args.concurrency);
const CHANNELS = posInt('channels', args.channels);
const FLOATS = posInt('floats', args.floats);
const CONFIGS = (args.replicas ?? '1,2,3').split(',').map((x) => posInt('replicas', x));

const program = {
  id: PID,
  base: defaultBasePath(),
  tokenizer: defaultTokenizerPath(),
  enrolmentToken: TOKEN,
  lora: { rank: 2, alpha: 4, targets: ['wq'], seed: 1 },
  training: { steps: 20, batchSize: 8 },
  cohortSize: DEVICES,
  minUpdates: Math.ceil(DEVICES * 0.95),
  overSelect: 1.05,
  rounds: ROUNDS,
  roundDeadlineMs: 900_000,
  retryDelayMs: 200,
  dp: { mode: 'none', clipNorm: CLIP },
};

type Msg = { t: 'listening'; address: string } | { t: 'stats'; cpuS: number; rssMiB: number; maxRssMiB: number } | { t: 'enrolled'; s: number } | { t: 'roundDone'; deviceS: number; cpuS: number; refused: number };

/** A forked child and its IPC inbox. */
class Child {
  private readonly inbox: Msg[] = [];
  private wake?: () => void;
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: Msg) => {
      this.inbox.push(m);
      this.wake?.();
    });
  }
  async next<T extends Msg['t']>(t: T): Promise<Extract<Msg, { t: T }>> {
    for (;;) {
      const i = this.inbox.findIndex((m) => m.t === t);
      if (i >= 0) return this.inbox.splice(i, 1)[0] as Extract<Msg, { t: T }>;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
  send(m: object): void {
    this.proc.send(m);
  }
}

const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rows inserted + updated and WAL bytes so far, in the server (after its statistics flush). */
async function written(admin: pg.Client): Promise<{ rows: number; wal: number }> {
  await sleep(1100); // backends flush their statistics at most once a second
  const r = await admin.query("SELECT sum(tup_inserted + tup_updated)::float8 AS rows, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS wal FROM pg_stat_database");
  return { rows: Number(r.rows[0].rows), wal: Number(r.rows[0].wal) };
}

interface Row {
  replicas: number;
  round: number;
  wallS: number;
  updates: number;
  refused: number;
  cpuS: number[];
  rssMiB: number[];
  rows: number;
  walMiB: number;
}

async function waitFor<T>(f: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    await sleep(20);
  }
}

async function runConfig(n: number, url: string, admin: pg.Client): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-bench-replicas-'));
  const replicas: Child[] = [];
  const fleetAddresses: string[] = [];
  // one after the other: the first creates the program and drives it
  for (let k = 0; k < n; k++) {
    const settings: ReplicaSettings = { dataDir: join(dir, `r${k}`), store: url, replicaId: `r${k}`, program };
    const c = new Child(fork(here('./replica-child.js'), [JSON.stringify(settings)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
    replicas.push(c);
    fleetAddresses.push((await c.next('listening')).address);
  }
  const store: StateStore = await openStateStore(url, { poolSize: 2 });
  const rows: Row[] = [];
  try {
    const fleetSettings: FleetSettings = { address: fleetAddresses[0], addresses: fleetAddresses, programId: PID, token: TOKEN, devices: DEVICES, concurrency: CONCURRENCY, channels: Math.max(CHANNELS, n), floats: FLOATS, clip: CLIP };
    const fleet = new Child(fork(here('./coordinator-devices.js'), [JSON.stringify(fleetSettings)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    await fleet.next('enrolled');
    const stats = async (): Promise<Extract<Msg, { t: 'stats' }>[]> => Promise.all(replicas.map(async (r) => (r.send({ t: 'stats' }), r.next('stats'))));
    for (let round = 1; round <= ROUNDS; round++) {
      const plan = await waitFor(() => store.openRoundPlan(PID));
      const version = plan.adapterVersion;
      const w0 = await written(admin);
      const s0 = await stats();
      const t0 = performance.now();
      fleet.send({ t: 'round', version });
      const dev = await fleet.next('roundDone');
      const done = await waitFor(async () => (await store.rounds(PID)).find((r) => r.roundId === plan.roundId && r.state !== 'open'));
      const wallS = (performance.now() - t0) / 1000;
      const s1 = await stats();
      const w1 = await written(admin);
      if (done.state !== 'completed') console.error(`${n} replica(s), round ${round}: ${done.state} — ${done.message}`);
      rows.push({ replicas: n, round, wallS, updates: done.updates, refused: dev.refused, cpuS: s1.map((s, k) => s.cpuS - s0[k].cpuS), rssMiB: s1.map((s) => s.maxRssMiB), rows: w1.rows - w0.rows, walMiB: (w1.wal - w0.wal) / 2 ** 20 });
      console.error(`${n} replica(s), round ${round}: ${wallS.toFixed(2)} s, ${done.updates} updates, replica CPU ${rows[rows.length - 1].cpuS.map((x) => x.toFixed(2)).join(' / ')} s`);
    }
    fleet.send({ t: 'exit' });
  } finally {
    for (const r of replicas) r.send({ t: 'exit' });
    await Promise.all(replicas.map((r) => new Promise((res) => r.proc.once('exit', res))));
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function main(): Promise<void> {
  const machine = `${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start`;
  const server = await startPostgres();
  const admin = new pg.Client({ connectionString: server.url });
  await admin.connect();
  const all: Row[] = [];
  try {
    for (const n of CONFIGS) all.push(...(await runConfig(n, await server.fresh(), admin)));
  } finally {
    await admin.end();
    await server.stop();
  }
  const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
  console.log(`\n${DEVICES} light devices (signed check-in, sealed f32 upload of ${FLOATS.toLocaleString('en')} floats, no training), first-come cohort ${DEVICES}, ${ROUNDS} rounds per configuration, ${Math.max(CHANNELS, 1)}+ gRPC channels spread over the replicas, ${CONCURRENCY} devices in flight; PostgreSQL on the same machine (fsync off); ${machine}; load average at the end ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
  console.log('| replicas | round | wall s | updates | updates/s | CPU s per replica | replica CPU ms per update (sum) | max RSS MiB per replica | PG rows written | PG WAL MiB | WAL bytes per update |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of all) {
    const cpu = r.cpuS.reduce((a, b) => a + b, 0);
    console.log(`| ${r.replicas} | ${r.round}${r.round === 1 ? '*' : ''} | ${f(r.wallS)} | ${r.updates} | ${f(r.updates / r.wallS, 0)} | ${r.cpuS.map((x) => f(x)).join(' / ')} | ${f((1000 * cpu) / r.updates, 2)} | ${r.rssMiB.map((x) => f(x, 0)).join(' / ')} | ${r.rows} | ${f(r.walMiB, 1)} | ${f((r.walMiB * 2 ** 20) / r.updates, 0)} |`);
  }
  console.log('\n\\* round 1 includes warm-up (JIT, first connections).');
  console.log(JSON.stringify({ bench: 'replicas', devices: DEVICES, rounds: ROUNDS, rows: all }));
}

await main();
