/**
 * The fuzz suite at scale (`npm run bench:fuzz`): ≥ 10,000 fast-check cases over every decoder
 * (test/fuzz/decoder-targets) and every RPC of a real coordinator child process over loopback
 * gRPC (test/fuzz/rpc-targets). Prints, per target, the cases run, how they ended (decoded /
 * refused, or the gRPC statuses seen), crashes, hangs and other findings with their inputs, and
 * the wall time. A crash restarts the coordinator on a fresh data dir and the run goes on.
 *
 * Run: npm run bench:fuzz [-- --decoder-runs 750 --rpc-runs 700 --seed 42]
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { decoderTargets, realInputs } from '../test/fuzz/decoder-targets.js';
import { RpcFuzzer, statusName, writeFuzzConfig, type RpcPlan } from '../test/fuzz/rpc-targets.js';
import { startCoordinatorProcess, type CoordinatorProcess } from '../test/server/coordinator-process.js';

const { values } = parseArgs({ options: { 'decoder-runs': { type: 'string' }, 'rpc-runs': { type: 'string' }, seed: { type: 'string' } } });
const DECODER_RUNS = Number(values['decoder-runs'] ?? 750);
const RPC_RUNS = Number(values['rpc-runs'] ?? 700);
const SEED = Number(values.seed ?? 42);
const MAX_FINDINGS_SHOWN = 3;

interface Row {
  target: string;
  cases: number;
  outcomes: Map<string, number>;
  crashes: number;
  hangs: number;
  findings: string[];
  maxMs: number;
  seconds: number;
}

const rows: Row[] = [];
const count = (m: Map<string, number>, k: string): void => {
  m.set(k, (m.get(k) ?? 0) + 1);
};
const t0 = performance.now();

// ---- decoders, in process ----
const files = realInputs();
for (const t of decoderTargets(files)) {
  const row: Row = { target: `decoder: ${t.name}`, cases: 0, outcomes: new Map(), crashes: 0, hangs: 0, findings: [], maxMs: 0, seconds: 0 };
  const s0 = performance.now();
  fc.check(
    fc.property(t.input, (x) => {
      row.cases++;
      const c0 = performance.now();
      try {
        count(row.outcomes, t.run(x));
      } catch (e) {
        const msg = (e as Error).message;
        count(row.outcomes, /decode took/.test(msg) ? 'slow' : 'untyped error');
        if (/decode took/.test(msg)) row.hangs++;
        if (row.findings.length < MAX_FINDINGS_SHOWN) row.findings.push(`${msg.split('\n').slice(0, 3).join(' | ')}; input ${fc.stringify(x).slice(0, 200)}`);
      }
      row.maxMs = Math.max(row.maxMs, performance.now() - c0);
      return true;
    }),
    { numRuns: DECODER_RUNS, seed: SEED },
  );
  row.seconds = (performance.now() - s0) / 1000;
  rows.push(row);
}

// ---- RPCs against a real coordinator process ----
const dir = mkdtempSync(join(tmpdir(), 'fedtune-bench-fuzz-'));
const config = writeFuzzConfig(dir);
let generation = 0;
let coord: CoordinatorProcess;
let fuzz: RpcFuzzer;
async function startFresh(): Promise<void> {
  coord = await startCoordinatorProcess(config, join(dir, `data-${generation++}`));
  fuzz = new RpcFuzzer(coord.address);
  await fuzz.setup();
}
await startFresh();
const methods = fuzz!.methodNames;
for (const method of methods) {
  const row: Row = { target: `rpc: ${method}`, cases: 0, outcomes: new Map(), crashes: 0, hangs: 0, findings: [], maxMs: 0, seconds: 0 };
  const s0 = performance.now();
  await fc.check(
    fc.asyncProperty(fuzz!.plans(method), async (plan: RpcPlan) => {
      row.cases++;
      const o = await fuzz.call(plan);
      row.maxMs = Math.max(row.maxMs, o.ms);
      count(row.outcomes, o.verdict === 'ok' ? statusName(o.code) : o.verdict === 'open' ? 'stream open at deadline' : o.verdict === 'deserialize-internal' ? 'INTERNAL (grpc-js: not a message)' : `${o.verdict} ${statusName(o.code)}`);
      if (o.verdict === 'hang') row.hangs++;
      const bad = o.verdict === 'hang' || o.verdict === 'bad-status';
      const alive = coord.alive() && (await fuzz.serving());
      if (!alive) row.crashes++;
      if ((bad || !alive) && row.findings.length < MAX_FINDINGS_SHOWN) {
        row.findings.push(`${alive ? '' : 'CRASH '}${o.verdict} ${statusName(o.code)} "${o.details}"; plan ${fc.stringify(plan).slice(0, 300)}${alive ? '' : `; stderr ${coord.stderr().slice(-500)}`}`);
      }
      if (!alive) {
        fuzz.close();
        if (coord.alive()) coord.child.kill('SIGKILL');
        await coord.exited;
        await startFresh();
      }
      return true;
    }),
    { numRuns: RPC_RUNS, seed: SEED },
  );
  row.seconds = (performance.now() - s0) / 1000;
  rows.push(row);
}
fuzz!.close();
coord!.child.kill('SIGTERM');
await coord!.exited;

// ---- figures ----
const total = rows.reduce((n, r) => n + r.cases, 0);
const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
console.log(`fedtune fuzz bench: ${total} cases (seed ${SEED}), wall ${((performance.now() - t0) / 1000).toFixed(1)} s`);
console.log(`${pad('target', 56)} ${pad('cases', 6)} ${pad('crashes', 7)} ${pad('hangs', 5)} ${pad('max ms', 7)} ${pad('s', 6)} outcomes`);
for (const r of rows) {
  const outcomes = [...r.outcomes].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(`${pad(r.target, 56)} ${pad(String(r.cases), 6)} ${pad(String(r.crashes), 7)} ${pad(String(r.hangs), 5)} ${pad(r.maxMs.toFixed(0), 7)} ${pad(r.seconds.toFixed(1), 6)} ${outcomes}`);
}
const crashes = rows.reduce((n, r) => n + r.crashes, 0);
const hangs = rows.reduce((n, r) => n + r.hangs, 0);
const other = rows.reduce((n, r) => n + (r.outcomes.get('untyped error') ?? 0) + [...r.outcomes].filter(([k]) => /^bad-status/.test(k)).reduce((m, [, v]) => m + v, 0), 0);
const internal = rows.reduce((n, r) => n + (r.outcomes.get('INTERNAL (grpc-js: not a message)') ?? 0), 0);
console.log(`totals: ${total} cases, ${crashes} crashes, ${hangs} hangs, ${other} untyped errors / UNKNOWN / INTERNAL / UNAVAILABLE from handlers, ${internal} INTERNAL from grpc-js for undecodable bytes (known finding)`);
for (const r of rows) for (const f of r.findings) console.log(`finding [${r.target}]: ${f}`);
