/**
 * kill -9 soak (`npm run bench:soak`): `fedtune coordinator` as a real child process on a fixed
 * port, with real devices (Device instances in this process, training rank-8 LoRA on every matrix of the real
 * stories260K for 2 steps a round, under central DP) that keep retrying across outages. The
 * coordinator is killed with SIGKILL at chosen points, 20 times, and restarted on the same data
 * dir each time. Kill points, drawn from a seeded RNG:
 *   startup     0–300 ms after it logs "listening" (recovery of the round a kill left open);
 *   open        0–500 ms after a device's first accepted upload of the round (updates in flight);
 *   aggregating 0–60 ms after all but one device's update is in (or 0–120 ms after the last device
 *               finishes training with the others' updates in): the last upload closes the round, and
 *               aggregation (ledger write → strategy → blob write → version commit) runs
 *               synchronously right then;
 *   completed   0–50 ms after a "round completed" log line (next round opening, devices downloading).
 * After each kill the dead coordinator's files are checked as it left them (a copy of the SQLite
 * files: PRAGMA integrity_check), then it is restarted and its database is checked again (a copy
 * taken once it listens, since it holds SQLite's exclusive lock):
 * every round completed before (logged "round completed", which follows the commit) is still
 * completed with its version; every adapter version seen before has the same blob sha256 and the
 * blob file's bytes still hash to it; the privacy ledger has a row for every completed round (it
 * never under-counts); ledger rows beyond completed rounds (a kill landed between the ledger write
 * and the release) are counted as window hits.
 *
 * Run: npm run bench:soak [-- --kills 20 --seed 7]
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { Device, type DeviceEvent } from '../client/index.js';
import { defaultDataDir, defaultModelDir } from '../model/paths.js';
import { seededRng } from '../random/rng.js';
import { startCoordinatorProcess, type CoordinatorProcess } from '../test/server/coordinator-process.js';

const { values } = parseArgs({ options: { kills: { type: 'string' }, seed: { type: 'string' }, devices: { type: 'string' } } });
const KILLS = Number(values.kills ?? 20);
const DEVICES = Number(values.devices ?? 3);
const rng = seededRng(Number(values.seed ?? 7));
const uniform = (lo: number, hi: number): number => lo + (hi - lo) * rng.nextFloat();
const TOKEN = 'soak-partner-token';
const PROGRAM = 'soak';
const TRIGGER_TIMEOUT_MS = 90_000;

const dir = mkdtempSync(join(tmpdir(), 'fedtune-soak-'));
const data = join(dir, 'data');
const config = join(dir, 'program.json');
const model = defaultModelDir();
writeFileSync(
  config,
  JSON.stringify({
    programs: [
      {
        id: PROGRAM,
        base: join(model, 'stories260K.bin'),
        tokenizer: join(model, 'tok512.bin'),
        enrolmentToken: TOKEN,
        lora: { rank: 8, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'], seed: 3 },
        training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' },
        cohortSize: DEVICES,
        minUpdates: DEVICES,
        minContributors: DEVICES,
        overSelect: 1,
        rounds: 1000,
        roundDeadlineMs: 30_000,
        retryDelayMs: 100,
        // population = the devices: q = 1 under Poisson sampling, every device in every round (as the soak needs)
        dp: { mode: 'central', clipNorm: 0.5, noiseMultiplier: 1.0, delta: 1e-5, population: DEVICES },
      },
    ],
  }),
);
const port = await new Promise<number>((resolve) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const p = (srv.address() as AddressInfo).port;
    srv.close(() => resolve(p));
  });
});
const address = `127.0.0.1:${port}`;

// ---- what we have seen (the invariants' memory) ----
const completedRounds = new Map<number, number>(); // round number → adapter version, from "round completed" log lines
const versions = new Map<number, string>(); // adapter version → blob sha256, from every check

// ---- devices, in this process, living across coordinator deaths ----
type Listener = (i: number, e: DeviceEvent) => void;
const listeners = new Set<Listener>();
let stopping = false;
const stopDevices = new AbortController();
let deviceRestarts = 0;
let uploads = 0;
const oz = readFileSync(join(defaultDataDir(), 'wizard-of-oz.txt'), 'utf8');
async function deviceLoop(i: number): Promise<void> {
  while (!stopping) {
    const d = new Device({ address, programId: PROGRAM, dataDir: join(dir, `dev${i}`), enrolmentToken: TOKEN, text: [oz.slice(i * 30_000, (i + 1) * 30_000)], seed: i, maxWaitMs: 300, rpcDeadlineMs: 10_000, retry: { attempts: 100_000, baseMs: 100, maxMs: 500 } });
    d.progress$.subscribe((e) => {
      if (e.kind === 'uploaded') uploads++;
      for (const l of listeners) l(i, e);
    });
    try {
      const s = await d.run(stopDevices.signal);
      if (/completed its/.test(s.reason)) return;
    } catch {
      if (!stopping) deviceRestarts++;
    } finally {
      d.close();
    }
  }
}

// ---- checks ----
interface Check {
  integrity: string;
  completed: number;
  ledger: number;
  missingLedger: number;
  lostRounds: number;
  changedVersions: number;
  badBlobs: number;
  versionsChecked: number;
  /** Blob files no adapter version names (the base, the tokenizer, and adapters written by a round killed before its commit). */
  unnamedBlobs: number;
}
function check(dbPath: string, blobs: string, readonly: boolean): Check {
  const db = new Database(dbPath, { readonly, fileMustExist: true });
  try {
    const integrity = (db.pragma('integrity_check', { simple: true }) as string) ?? 'no answer';
    const rounds = db.prepare('SELECT round_id, round_number, adapter_version FROM rounds WHERE program_id = ? AND state = ?').all(PROGRAM, 'completed') as { round_id: string; round_number: number; adapter_version: number }[];
    const ledger = new Set((db.prepare('SELECT round_id FROM privacy_ledger WHERE program_id = ?').all(PROGRAM) as { round_id: string }[]).map((r) => r.round_id));
    const vrows = db.prepare('SELECT version, sha256 FROM adapter_versions WHERE program_id = ?').all(PROGRAM) as { version: number; sha256: string }[];
    const byNumber = new Map(rounds.map((r) => [r.round_number, r.adapter_version]));
    let lostRounds = 0;
    for (const [n, v] of completedRounds) if (byNumber.get(n) !== v) lostRounds++;
    let changedVersions = 0;
    let badBlobs = 0;
    const now = new Map(vrows.map((r) => [r.version, r.sha256]));
    for (const [v, sha] of versions) if (now.get(v) !== sha) changedVersions++;
    for (const [v, sha] of now) {
      if (!versions.has(v)) versions.set(v, sha);
      const f = join(blobs, sha);
      if (!existsSync(f) || createHash('sha256').update(readFileSync(f)).digest('hex') !== sha) badBlobs++;
    }
    const named = new Set(now.values());
    const unnamedBlobs = existsSync(blobs) ? readdirSync(blobs).filter((f) => /^[0-9a-f]{64}$/.test(f) && !named.has(f)).length : 0;
    return { integrity, completed: rounds.length, ledger: ledger.size, missingLedger: rounds.filter((r) => !ledger.has(r.round_id)).length, lostRounds, changedVersions, badBlobs, versionsChecked: now.size, unnamedBlobs };
  } finally {
    db.close();
  }
}
/**
 * The database checked on a copy of its files: the dead coordinator's as it left it (opening the
 * original would recover it), or the restarted one's (it holds SQLite's exclusive lock).
 */
function checkCopy(label: string): Check & { partials: number } {
  const copy = join(dir, label);
  mkdirSync(copy);
  for (const suffix of ['', '-wal', '-shm']) {
    const f = join(data, `coordinator.sqlite${suffix}`);
    if (existsSync(f)) copyFileSync(f, join(copy, `coordinator.sqlite${suffix}`));
  }
  const blobs = join(data, 'blobs');
  const partials = existsSync(blobs) ? readdirSync(blobs).filter((f) => f.endsWith('.partial')).length : 0;
  return { ...check(join(copy, 'coordinator.sqlite'), blobs, false), partials };
}

// ---- triggers ----
type Mode = 'startup' | 'open' | 'aggregating' | 'completed';
function trigger(c: CoordinatorProcess, mode: Mode): Promise<string> {
  return new Promise((resolve) => {
    const cleanups: (() => void)[] = [];
    let fired = false;
    const fire = (why: string, delayMs: number): void => {
      if (fired) return;
      fired = true;
      cleanups.forEach((f) => f());
      setTimeout(() => resolve(`${why} +${delayMs.toFixed(0)} ms`), delayMs);
    };
    const timeout = setTimeout(() => fire('timeout', 0), TRIGGER_TIMEOUT_MS);
    cleanups.push(() => clearTimeout(timeout));
    if (mode === 'startup') return fire('listening', uniform(0, 300));
    if (mode === 'completed') {
      c.onLog((l) => l.msg === 'round completed' && fire(`round ${String(l.round)} completed`, uniform(0, 50)));
      return;
    }
    const uploadedIn = new Map<string, number>();
    const l: Listener = (_i, e) => {
      if (e.kind === 'uploaded') {
        uploadedIn.set(e.roundId, (uploadedIn.get(e.roundId) ?? 0) + 1);
        if (mode === 'open') fire(`upload accepted in ${e.roundId}`, uniform(0, 500));
        // all but one update in: the last one (usually already on the wire) closes the round
        if (mode === 'aggregating' && uploadedIn.get(e.roundId) === DEVICES - 1) fire(`${DEVICES - 1} of ${DEVICES} uploads in ${e.roundId}`, uniform(0, 60));
      }
      if (mode === 'aggregating' && e.kind === 'training' && e.step === e.totalSteps && (uploadedIn.get(e.roundId) ?? 0) === DEVICES - 1) fire(`last device trained in ${e.roundId}`, uniform(0, 120));
    };
    listeners.add(l);
    cleanups.push(() => listeners.delete(l));
  });
}

// ---- the soak ----
const t0 = performance.now();
const modes: Mode[] = ['startup', 'open', 'aggregating', 'completed'];
interface Row {
  n: number;
  mode: Mode;
  at: string;
  lastLog: string;
  asLeft: Check & { partials: number };
  after: Check;
  restartMs: number;
}
const rows: Row[] = [];
let c = await startCoordinatorProcess(config, data, { port });
const watchLog = (p: CoordinatorProcess): void =>
  p.onLog((l) => {
    if (l.msg === 'round completed') completedRounds.set(Number(l.round), Number(l.version));
  });
watchLog(c);
const fleet = Array.from({ length: DEVICES }, (_, i) => deviceLoop(i));
for (let n = 1; n <= KILLS; n++) {
  // every mode once, then half the kills aim at the aggregation window
  const mode = n <= modes.length ? modes[n - 1] : rng.nextFloat() < 0.5 ? 'aggregating' : modes[Math.floor(rng.nextFloat() * modes.length)];
  const at = await trigger(c, mode);
  const lastLog = c.lines.filter((l) => l.msg !== 'device enrolled').at(-1)?.msg ?? '';
  c.child.kill('SIGKILL');
  await c.exited;
  const asLeft = checkCopy(`as-left-${n}`);
  const r0 = performance.now();
  c = await startCoordinatorProcess(config, data, { port });
  watchLog(c);
  const restartMs = performance.now() - r0;
  const after = checkCopy(`restarted-${n}`);
  rows.push({ n, mode, at, lastLog, asLeft, after, restartMs });
  process.stderr.write(`kill ${n}/${KILLS} (${mode}, ${at}): completed ${after.completed}, ledger ${after.ledger}\n`);
}
// a last stretch without kills: the federation still makes progress after 20 deaths
const completedBefore = completedRounds.size;
await trigger(c, 'completed');
await trigger(c, 'completed');
stopping = true;
stopDevices.abort();
c.child.kill('SIGTERM');
const cleanExit = await c.exited;
await Promise.allSettled(fleet);
const final = check(join(data, 'coordinator.sqlite'), join(data, 'blobs'), true);

// ---- figures ----
const pad = (s: string | number, n: number): string => String(s).padEnd(n);
console.log(`fedtune kill -9 soak: ${KILLS} SIGKILLs of a coordinator process with ${DEVICES} devices (rank-8 LoRA on 7 matrices, 2 steps/round, central DP), wall ${((performance.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${pad('#', 3)} ${pad('mode', 12)} ${pad('killed at', 40)} ${pad('last log', 16)} ${pad('integrity', 10)} ${pad('partials', 8)} ${pad('completed', 9)} ${pad('ledger', 6)} ${pad('lost', 4)} ${pad('changed', 7)} ${pad('bad blob', 8)} ${pad('no ledger', 9)} ${pad('window hit', 10)} ${pad('orphan+', 7)} restart ms`);
let unnamedBefore = rows[0]?.asLeft.unnamedBlobs ?? 0;
let overBefore = 0;
let orphansLeft = 0;
let hits = 0;
for (const r of rows) {
  const a = r.after;
  // this kill left a ledger row without its completed round (the over-count grew)
  const hit = r.asLeft.ledger - r.asLeft.completed > overBefore ? 'yes' : '';
  if (hit) hits++;
  overBefore = r.after.ledger - r.after.completed;
  const orphans = r.asLeft.unnamedBlobs - unnamedBefore; // adapter blobs written by a round this kill cut short
  unnamedBefore = r.after.unnamedBlobs;
  orphansLeft += Math.max(0, orphans);
  console.log(
    `${pad(r.n, 3)} ${pad(r.mode, 12)} ${pad(r.at.slice(0, 40), 40)} ${pad(r.lastLog, 16)} ${pad(`${r.asLeft.integrity}/${a.integrity}`, 10)} ${pad(r.asLeft.partials, 8)} ${pad(a.completed, 9)} ${pad(a.ledger, 6)} ${pad(r.asLeft.lostRounds + a.lostRounds, 4)} ${pad(r.asLeft.changedVersions + a.changedVersions, 7)} ${pad(r.asLeft.badBlobs + a.badBlobs, 8)} ${pad(r.asLeft.missingLedger + a.missingLedger, 9)} ${pad(hit, 10)} ${pad(orphans > 0 ? orphans : '', 7)} ${r.restartMs.toFixed(0)}`,
  );
}
const sum = (f: (r: Row) => number): number => rows.reduce((s, r) => s + f(r), 0);
const violations = {
  integrity: rows.filter((r) => r.asLeft.integrity !== 'ok' || r.after.integrity !== 'ok').length + (final.integrity === 'ok' ? 0 : 1),
  lostRounds: sum((r) => r.asLeft.lostRounds + r.after.lostRounds) + final.lostRounds,
  changedVersions: sum((r) => r.asLeft.changedVersions + r.after.changedVersions) + final.changedVersions,
  badBlobs: sum((r) => r.asLeft.badBlobs + r.after.badBlobs) + final.badBlobs,
  ledgerUnderCounts: sum((r) => r.asLeft.missingLedger + r.after.missingLedger) + final.missingLedger,
};
console.log(`final: ${final.completed} completed rounds (${completedRounds.size - completedBefore} after the last kill), ${final.ledger} ledger rows (${final.ledger - final.completed} over-counted spends of rounds killed after their ledger write), ${final.versionsChecked} adapter versions checked by sha256, ${uploads} uploads accepted, ${deviceRestarts} device runs restarted, SIGTERM exit ${cleanExit}`);
console.log(`kills landing between the ledger write and the release (window hits): ${hits} of ${KILLS}; .partial blob files left by kills: ${sum((r) => r.asLeft.partials)}; adapter blobs written but never committed (kill between the blob write and the version commit): ${orphansLeft}`);
console.log(`violations: ${JSON.stringify(violations)}`);
process.exitCode = Object.values(violations).some((v) => v > 0) ? 1 : 0;
