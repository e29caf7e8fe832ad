/**
 * Aggregator costs on the coordinator.
 *
 * (a) Streaming FedAvg: FedAvgAccumulator.add over many updates, in GB/s of update data consumed
 *     (4 bytes per float read from the updates), next to three baselines timed in the same
 *     process on the same buffers: Float32Array.prototype.set (a memory copy), a plain JS
 *     Float32 `acc[i] += u[i]` loop, and the accumulator's own loop without its checks
 *     (`sum64[i] += w * u[i]`). The accumulator runs twice: on its native fold (fedtune's addon,
 *     when built) and on its wasm SIMD kernel (setNativeFedAvg(false)). Repetitions are
 *     interleaved so every method sees the same machine noise; each ratio is the median over
 *     repetitions of (method / copy) in that rep, i.e. copy time / method time for the same
 *     update data (the issue's definition). Beside it, bytes moved: the fold must read 4 bytes of
 *     update and read and write 8 of float64 sum per value (20 B), a copy reads 4 and writes 4
 *     (8 B), so the fold's share of the copy's memory throughput is 2.5 × the time ratio (see
 *     minBytes for the others).
 *     'accumulator.addAll ×4' hands the native fold 4 updates at a time (one pass over the sum
 *     per 4 updates), as a coordinator holding its last 4 uploads could. 'native check pass
 *     alone' times the fold's first pass (the finiteness check) by itself.
 * (b) Robust aggregators (coordinateMedian, trimmedMean, krum, multiKrum, bulyan, boundNorms):
 *     time and memory versus device count n at a fixed dimension, and versus dimension at n = 30.
 *     Each case runs in its own child process: the n updates are generated in place (no garbage),
 *     then after a GC the aggregator runs once for memory (peak RSS delta from the process's
 *     maxRSS high-water mark; heap-used and arrayBuffers deltas right after the call, before any
 *     GC, so they include garbage not yet collected), then more times for a median time.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/aggregators.js [--part fedavg|robust|all]
 *      [--updates 64] [--big 4194304] [--reps 7] [--ns 10,30,100,300] [--dim 100000]
 *      [--dims 10000,100000,1000000,4000000]
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { nativeAddon } from '../model/ops/native-addon.js';
import { boundNorms, bulyan, coordinateMedian, FedAvgAccumulator, krum, multiKrum, nativeFedAvgStatus, setNativeFedAvg, trimmedMean } from '../aggregators/index.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    part: { type: 'string', default: 'all' },
    updates: { type: 'string', default: '64' },
    big: { type: 'string', default: String(4 * 2 ** 20) },
    reps: { type: 'string', default: '7' },
    ns: { type: 'string', default: '10,30,100,300' },
    dim: { type: 'string', default: '100000' },
    dims: { type: 'string', default: '10000,100000,1000000,4000000' },
  },
});

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = (b: number): number => b / 2 ** 20;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '–');
const machine = (): string => `${cpus().length} cores (${cpus()[0]?.model.trim()}), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`;

/** Fill `a` in place with values in [-1, 1) from a cheap LCG (no allocation). */
function fill(a: Float32Array, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

// LoRA rank 8 on all seven block matrices of the 39.6M-parameter base of bench:memory
// (dim 512, hidden 1376, 8 layers, 8 heads / 4 kv heads): r·(in + out) per matrix.
const LORA_FLOATS = (() => {
  const dim = 512;
  const kv = (512 / 8) * 4;
  const hidden = 1376;
  const shapes: [number, number][] = [[dim, dim], [kv, dim], [kv, dim], [dim, dim], [hidden, dim], [dim, hidden], [hidden, dim]];
  return 8 * 8 * shapes.reduce((s, [o, i]) => s + o + i, 0);
})();

// ---- (a) streaming FedAvg ----------------------------------------------------------------------

interface FedAvgRow {
  label: string;
  floats: number;
  updates: number;
  gbps: Record<string, number>;
  ratio: Record<string, number>;
  meanMs: number;
}

const ALL_METHODS = ['copy (set)', 'plain f32 add loop', 'plain f64 weighted add loop', 'accumulator, wasm', 'accumulator, native', 'accumulator.addAll ×4, native', 'native check pass alone'] as const;
type Method = (typeof ALL_METHODS)[number];
const NATIVE = nativeFedAvgStatus();
const METHODS = ALL_METHODS.filter((m) => !m.endsWith('native') || NATIVE.available);
/**
 * The least memory traffic a method needs per value of update, in bytes: a fold reads the update
 * (4) and reads and writes the f64 sum (8 + 8); four updates per pass share the sum's 16; the
 * check pass only reads; a copy reads 4 and writes 4. (The implementations move more: the wasm
 * path copies each update into wasm memory first, and the native one reads it twice, once per pass.)
 */
function minBytes(m: Method, floats: number): number {
  if (m === 'native check pass alone') return 4;
  if (m === 'accumulator.addAll ×4, native') return floats >= 2 ** 20 ? 4 + 16 / 4 : 20;
  return 20;
}
const COPY_BYTES = 8;

function fedavgCase(label: string, floats: number, count: number, distinct: number, reps: number): FedAvgRow {
  const ups = Array.from({ length: distinct }, (_, k) => fill(new Float32Array(floats), k + 1));
  const weights = Array.from({ length: count }, (_, k) => 1 + (k % 7));
  const dst32 = new Float32Array(floats);
  const acc32 = new Float32Array(floats);
  const acc64 = new Float64Array(floats);
  const run: Record<Method, () => void> = {
    'copy (set)': () => {
      for (let k = 0; k < count; k++) dst32.set(ups[k % distinct]);
    },
    'plain f32 add loop': () => {
      acc32.fill(0);
      for (let k = 0; k < count; k++) {
        const u = ups[k % distinct];
        for (let i = 0; i < u.length; i++) acc32[i] += u[i];
      }
    },
    'plain f64 weighted add loop': () => {
      acc64.fill(0);
      for (let k = 0; k < count; k++) {
        const u = ups[k % distinct];
        const w = weights[k];
        for (let i = 0; i < u.length; i++) acc64[i] += w * u[i];
      }
    },
    'accumulator, wasm': () => accumulate(false),
    'accumulator, native': () => accumulate(true),
    'accumulator.addAll ×4, native': () => {
      const acc = new FedAvgAccumulator(floats);
      if (acc.engine !== 'native') throw new Error(`expected the native engine, got ${acc.engine}`);
      for (let k = 0; k < count; k += 4) acc.addAll(weights.slice(k, k + 4).map((weight, j) => ({ update: ups[(k + j) % distinct], weight })));
      if (acc.count !== count) throw new Error('lost updates');
    },
    // the fold's first pass alone: a NaN in the last value makes it check everything, then add nothing
    'native check pass alone': () => {
      const st = nativeAddon();
      const fold = st.loaded ? (st.addon as unknown as { fedavgFold: (s: Float64Array, u: Float32Array, w: number) => number }).fedavgFold : null;
      if (!fold) throw new Error('no native fold');
      for (let k = 0; k < count; k++) {
        const u = ups[k % distinct];
        const last = u[floats - 1];
        u[floats - 1] = Number.NaN;
        const at = fold(acc64, u, 1);
        u[floats - 1] = last;
        if (at !== floats - 1) throw new Error('check pass: wrong index');
      }
    },
  };
  function accumulate(native: boolean): void {
    setNativeFedAvg(native);
    const acc = new FedAvgAccumulator(floats);
    setNativeFedAvg(true);
    if (acc.engine !== (native ? 'native' : 'wasm')) throw new Error(`expected the ${native ? 'native' : 'wasm'} engine, got ${acc.engine}`);
    for (let k = 0; k < count; k++) acc.add(ups[k % distinct], weights[k]);
    if (acc.count !== count) throw new Error('lost updates');
  }
  // warm-up (JIT, page faults on the destination buffers)
  for (const m of METHODS) run[m]();
  const secs: Record<string, number[]> = {};
  const ratios: Record<string, number[]> = {};
  for (let r = 0; r < reps; r++) {
    const t: Record<string, number> = {};
    for (const m of METHODS) {
      const t0 = performance.now();
      run[m]();
      t[m] = (performance.now() - t0) / 1000;
      (secs[m] ??= []).push(t[m]);
    }
    for (const m of METHODS) (ratios[m] ??= []).push(t['copy (set)'] / t[m]);
  }
  const bytes = 4 * floats * count;
  const gbps: Record<string, number> = {};
  const ratio: Record<string, number> = {};
  for (const m of METHODS) {
    gbps[m] = bytes / median(secs[m]) / 1e9;
    ratio[m] = median(ratios[m]);
  }
  // mean(): the one closing pass
  const acc = new FedAvgAccumulator(floats);
  acc.add(ups[0], 1);
  const tm: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    acc.mean();
    tm.push(performance.now() - t0);
  }
  return { label, floats, updates: count, gbps, ratio, meanMs: median(tm) };
}

function partFedAvg(): void {
  const count = Number(args.updates);
  const big = Number(args.big);
  const reps = Number(args.reps);
  console.log(`\n### (a) streaming FedAvg — ${machine()}; native fold: ${NATIVE.available ? 'yes' : `no (${NATIVE.reason})`}\n`);
  const rows = [
    fedavgCase(`${f(big / 2 ** 20, 0)}Mi floats (${f(MiB(4 * big), 0)} MiB/update, f64 sum ${f(MiB(8 * big), 0)} MiB)`, big, count, count, reps),
    fedavgCase(`LoRA r8, all 7 matrices, 39.6M base: ${LORA_FLOATS} floats (${f(MiB(4 * LORA_FLOATS), 2)} MiB/update, f64 sum ${f(MiB(8 * LORA_FLOATS), 1)} MiB)`, LORA_FLOATS, 4 * count, count, reps),
  ];
  const accs = METHODS.filter((m) => m.startsWith('accumulator') || m.startsWith('native'));
  console.log(`| update size | updates | ${METHODS.map((m) => `${m} GB/s`).join(' | ')} | ${accs.map((m) => `${m} / copy (time)`).join(' | ')} | ${accs.map((m) => `${m}: least bytes moved / copy's`).join(' | ')} | mean() ms |`);
  console.log(`|---|---|${METHODS.map(() => '---|').join('')}${accs.map(() => '---|---|').join('')}---|`);
  for (const r of rows) {
    console.log(`| ${r.label} | ${r.updates} | ${METHODS.map((m) => f(r.gbps[m])).join(' | ')} | ${accs.map((m) => f(r.ratio[m], 3)).join(' | ')} | ${accs.map((m) => f((r.ratio[m] * minBytes(m, r.floats)) / COPY_BYTES, 2)).join(' | ')} | ${f(r.meanMs, 1)} |`);
  }
  console.log(
    `\n${JSON.stringify({
      bench: 'aggregators-fedavg',
      reps,
      nativeFold: NATIVE.available,
      copyBytesPerValue: COPY_BYTES,
      rows: rows.map((r) => ({ floats: r.floats, updates: r.updates, gbps: Object.fromEntries(METHODS.map((m) => [m, +r.gbps[m].toFixed(3)])), ratioToCopy: Object.fromEntries(METHODS.map((m) => [m, +r.ratio[m].toFixed(3)])), leastBytesPerValue: Object.fromEntries(METHODS.filter((m) => !m.startsWith('copy') && !m.startsWith('plain')).map((m) => [m, minBytes(m, r.floats)])), meanMs: +r.meanMs.toFixed(2) })),
      machine: machine(),
    })}`,
  );
}

// ---- (b) robust aggregators -----------------------------------------------------------------

/** f for the Krum family: the most Bulyan tolerates (n ≥ 4f + 3), used for all three. */
const fFor = (n: number): number => Math.max(0, Math.floor((n - 3) / 4));

const AGGS: Record<string, { run: (u: Float32Array[]) => unknown; label: (n: number) => string }> = {
  coordinateMedian: { run: (u) => coordinateMedian(u), label: () => 'coordinateMedian' },
  trimmedMean: { run: (u) => trimmedMean(u, 0.1), label: () => 'trimmedMean(β = 0.1)' },
  krum: { run: (u) => krum(u, fFor(u.length)), label: (n) => `krum(f = ${fFor(n)})` },
  multiKrum: { run: (u) => multiKrum(u, fFor(u.length)), label: (n) => `multiKrum(f = ${fFor(n)}, m = n − f)` },
  bulyan: { run: (u) => bulyan(u, fFor(u.length)), label: (n) => `bulyan(f = ${fFor(n)})` },
  boundNorms: { run: (u) => boundNorms(u, 1), label: () => 'boundNorms(M = 1)' },
};

interface RobustResult {
  agg: string;
  n: number;
  d: number;
  inputMiB: number;
  medianS: number;
  runs: number;
  peakRssMiB: number;
  heapMiB: number;
  arrayBuffersMiB: number;
}

function robustChild(agg: string, n: number, d: number): void {
  const ups = Array.from({ length: n }, (_, k) => fill(new Float32Array(d), k + 1));
  const a = AGGS[agg];
  gc();
  gc();
  const m0 = process.memoryUsage();
  const rss0 = Math.max(process.resourceUsage().maxRSS * 1024, m0.rss);
  let t0 = performance.now();
  a.run(ups);
  const first = (performance.now() - t0) / 1000;
  const m1 = process.memoryUsage();
  const rss1 = process.resourceUsage().maxRSS * 1024;
  const times = [first];
  // more runs for a median, up to ~5 s of extra work
  const more = Math.min(4, Math.floor(5 / Math.max(first, 1e-3)));
  for (let r = 0; r < more; r++) {
    gc();
    t0 = performance.now();
    a.run(ups);
    times.push((performance.now() - t0) / 1000);
  }
  const res: RobustResult = {
    agg,
    n,
    d,
    inputMiB: MiB(4 * n * d),
    medianS: median(times.length > 1 ? times.slice(1) : times),
    runs: times.length,
    peakRssMiB: MiB(Math.max(0, rss1 - rss0)),
    heapMiB: MiB(m1.heapUsed - m0.heapUsed),
    arrayBuffersMiB: MiB(m1.arrayBuffers - m0.arrayBuffers),
  };
  process.stdout.write(`${JSON.stringify(res)}\n`);
}

function runChild(agg: string, n: number, d: number): RobustResult {
  const r = spawnSync(process.execPath, ['--max-old-space-size=8192', fileURLToPath(import.meta.url), 'child', agg, String(n), String(d)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`${agg} n=${n} d=${d}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as RobustResult;
}

function partRobust(): void {
  const ns = String(args.ns).split(',').map(Number);
  const d = Number(args.dim);
  const dims = String(args.dims).split(',').map(Number);
  console.log(`\n### (b) robust aggregators — ${machine()}\n`);
  const all: RobustResult[] = [];
  const table = (title: string, cases: [number, number][]): void => {
    console.log(`\n${title}\n`);
    console.log('| aggregator | n | d | input MiB | time s | peak RSS Δ MiB | heap Δ MiB | arrayBuffers Δ MiB |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const agg of Object.keys(AGGS)) {
      for (const [n, dd] of cases) {
        const r = runChild(agg, n, dd);
        all.push(r);
        console.log(`| ${AGGS[agg].label(n)} | ${n} | ${dd} | ${f(r.inputMiB, 1)} | ${r.medianS < 0.1 ? r.medianS.toFixed(4) : f(r.medianS, 3)} | ${f(r.peakRssMiB, 1)} | ${f(r.heapMiB, 2)} | ${f(r.arrayBuffersMiB, 2)} |`);
      }
    }
  };
  table(`versus device count at d = ${d}`, ns.map((n) => [n, d]));
  table('versus dimension at n = 30', dims.map((dd) => [30, dd]));
  console.log(`\n${JSON.stringify({ bench: 'aggregators-robust', rows: all.map((r) => ({ ...r, medianS: +r.medianS.toPrecision(4), inputMiB: +r.inputMiB.toFixed(2), peakRssMiB: +r.peakRssMiB.toFixed(2), heapMiB: +r.heapMiB.toFixed(3), arrayBuffersMiB: +r.arrayBuffersMiB.toFixed(3) })), machine: machine() })}`);
}

if (positionals[0] === 'child') {
  robustChild(positionals[1], Number(positionals[2]), Number(positionals[3]));
} else {
  if (args.part === 'fedavg' || args.part === 'all') partFedAvg();
  if (args.part === 'robust' || args.part === 'all') partRobust();
}
