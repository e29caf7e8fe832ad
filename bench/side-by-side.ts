/**
 * fedtune against PyTorch on the same LoRA step (issue 15), in one command: builds the libtorch
 * program of bench/torch/ if needed, then alternates fedtune's step and PyTorch's, each in its
 * own process under `/usr/bin/time -v`, at 1 and 2 threads, and prints tokens/s, peak RSS and
 * each side's plain 1024³ matMul GFLOP/s. Steps: rank-8 LoRA on wq and wv, int8 (Q8_0) frozen
 * base dequantized per use, AdamW, batch 8, on a random base of the `dim256` shape (dim 256,
 * 4 layers, 8 heads, hidden 688, vocab 512, 128 tokens) and the `stories260K` shape (dim 64,
 * 5 layers, 8 heads / 4 kv, hidden 172, vocab 512, 256 tokens). PyTorch runs with OpenBLAS
 * (LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp) and OMP_NUM_THREADS = threads.
 * Run: npm run bench:torch [-- --steps N] [-- --rounds N] [-- --breakdown] (breakdown: fedtune's memory by part)
 * [-- --before OTHER/dist/bench/side-by-side.js] (a third side: another build of fedtune, e.g. an
 * older commit's, run in the same rotation, for before/after ratios from one run)
 * [-- --omp-passive] (PyTorch with OMP_WAIT_POLICY=PASSIVE: fairer on a busy machine).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { BOS, FrozenBase, initBackend, LocalTrainer, LoraAdapter, randomBase, terminateWasmThreads } from '../model/index.js';
import { nativeAddon } from '../model/ops/native-addon.js';
import { memoryBreakdown, wasmHeapBytes } from './step-memory.js';
import { SHAPES } from './side-by-side-shapes.js';

const here = dirname(fileURLToPath(import.meta.url));
const SRC = join(here, '../../bench/torch');
const BIN = join(SRC, 'build/lora_step');
const OPENBLAS = '/usr/lib/x86_64-linux-gnu/openblas-openmp';

function plainMatMulGflops(): number {
  const n = 1024;
  // each product is freed at once (as PyTorch frees its), so timing adds one [n, n] to the peak
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const once = (): void => {
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
  };
  once();
  const reps = 8;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) once();
  const gflops = (2 * n ** 3 * reps) / ((performance.now() - t0) / 1000) / 1e9;
  tf.dispose([a, b]);
  return gflops;
}

/** The token stream both sides read: 3 + (i·7919 mod (vocab − 3)). */
function stream(vocab: number): Int32Array {
  return Int32Array.from({ length: 20000 }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
}

async function child(shape: string, threads: number, steps: number, breakdown: boolean): Promise<void> {
  // with the native products, threads go to them and the wasm ops stay single-threaded (the faster
  // of the two 2-thread layouts in bench:native); without them, to the threaded wasm build
  const native = process.env.FEDTUNE_NATIVE !== '0' && nativeAddon().loaded;
  const backend = await initBackend('wasm', native ? { threads: 1, nativeThreads: threads } : { threads });
  const s = SHAPES[shape];
  const base = new FrozenBase(randomBase(s.config, 1), 'int8');
  const tokens = stream(s.config.vocabSize);
  const ad = LoraAdapter.create(base.config, base.sha256, { rank: 8, targets: ['wq', 'wv'] });
  const opts = { startId: BOS, batchSize: s.batch, seqLen: s.seq, seed: 1 };
  if (breakdown) {
    process.stdout.write(`${JSON.stringify(await memoryBreakdown(base, ad, tokens, opts))}\n`);
    return;
  }
  await new LocalTrainer(base, ad, tokens, { ...opts, steps: 2 }).run();
  const mm1 = plainMatMulGflops();
  const u0 = process.cpuUsage();
  const r = await new LocalTrainer(base, ad, tokens, { ...opts, steps }).run();
  const u = process.cpuUsage(u0);
  const mm2 = plainMatMulGflops();
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;
  const mu = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ side: 'fedtune', backend: backend.description, config: shape, threads, steps, tokensPerSecond: r.tokensPerSecond, tokensPerCpuSecond: r.tokens / ((u.user + u.system) / 1e6), matmulGflops: (mm1 + mm2) / 2, peakRssBytes, lastLoss: r.lastLoss, wasmHeapBytes: wasmHeapBytes(), v8HeapTotal: mu.heapTotal, rss: mu.rss })}\n`);
}

function buildTorch(): void {
  const src = join(SRC, 'lora_step.cpp');
  if (existsSync(BIN) && statSync(BIN).mtimeMs >= statSync(src).mtimeMs) return;
  console.error('building bench/torch/lora_step (libtorch-dev) …');
  const r = spawnSync('sh', [join(SRC, 'build.sh')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('bench/torch/build.sh failed: is libtorch-dev installed?');
}

interface Run {
  tokensPerSecond: number;
  /** Tokens per second of the process's own CPU time over the timed steps (absent from older builds). */
  tokensPerCpuSecond?: number;
  matmulGflops: number;
  /** From /usr/bin/time -v ("Maximum resident set size"). */
  maxRss: number;
  /** fedtune's backend line (absent for PyTorch). */
  backend?: string;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const r = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  const j = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { tokensPerSecond: number; tokensPerCpuSecond?: number; matmulGflops: number; backend?: string };
  const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  if (!kb) throw new Error('/usr/bin/time -v printed no maximum resident set size');
  return { tokensPerSecond: j.tokensPerSecond, tokensPerCpuSecond: j.tokensPerCpuSecond, matmulGflops: j.matmulGflops, maxRss: Number(kb[1]) * 1024, backend: j.backend };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === 'child') return child(args[1], Number(args[2]), Number(args[3]), args[4] === 'breakdown');
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const me = fileURLToPath(import.meta.url);
  if (args.includes('--breakdown')) {
    for (const shape of Object.keys(SHAPES)) {
      for (const threads of [1, 2]) {
        const r = spawnSync(process.execPath, ['--expose-gc', me, 'child', shape, String(threads), '0', 'breakdown'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(r.stderr);
        console.log(`${shape} ${threads} ${r.stdout.trim()}`);
      }
    }
    return;
  }
  buildTorch();
  const steps = Number(flag('--steps') ?? 10);
  const before = flag('--before');
  // OpenMP threads that sleep instead of spinning between regions: on a shared, oversubscribed
  // machine spinning threads collapse PyTorch's 2-thread runs to a few hundred tokens/s
  const ompPassive = args.includes('--omp-passive');
  if (before !== undefined && !existsSync(before)) throw new Error(`--before: ${before} does not exist`);
  const rounds = Number(flag('--rounds') ?? 1);
  const backends = new Set<string>();
  const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
  console.log(`load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}${ompPassive ? '; PyTorch with OMP_WAIT_POLICY=PASSIVE' : ''}`);
  const bHead = before ? ' before tokens/s | before ratio |' : '';
  console.log(`| shape | threads | fedtune tokens/s | PyTorch tokens/s | speed ratio |${bHead} fedtune peak RSS (MiB) | PyTorch peak RSS (MiB) | RSS ratio | matMul GFLOP/s fedtune / PyTorch | tokens per CPU second fedtune / PyTorch${before ? ' / before' : ''} |`);
  console.log(`|---|---|---|---|---|${before ? '---|---|' : ''}---|---|---|---|---|`);
  let k = 0;
  for (let round = 0; round < rounds; round++) {
    for (const shape of Object.keys(SHAPES)) {
      for (const threads of [1, 2]) {
        const runFedtune = (): Run => timed(process.execPath, [me, 'child', shape, String(threads), String(steps)], process.env);
        const torchEnv = { ...process.env, LD_LIBRARY_PATH: OPENBLAS, OMP_NUM_THREADS: String(threads), ...(ompPassive ? { OMP_WAIT_POLICY: 'PASSIVE' } : {}) };
        const runTorch = (): Run => timed(BIN, [shape, String(steps), String(threads)], torchEnv);
        const runBefore = (): Run => timed(process.execPath, [before as string, 'child', shape, String(threads), String(steps)], process.env);
        // rotate which side goes first
        const sides: (() => Run)[] = before ? [runFedtune, runTorch, runBefore] : [runFedtune, runTorch];
        const shift = k++ % sides.length;
        const results = new Map<() => Run, Run>();
        for (let i = 0; i < sides.length; i++) {
          const side = sides[(i + shift) % sides.length];
          results.set(side, side());
        }
        const f = results.get(runFedtune) as Run;
        const p = results.get(runTorch) as Run;
        const b = results.get(runBefore);
        if (f.backend) backends.add(f.backend);
        const bCols = b ? ` ${b.tokensPerSecond.toFixed(0)} | ${(b.tokensPerSecond / p.tokensPerSecond).toFixed(2)} |` : '';
        console.log(
          `| ${shape} | ${threads} | ${f.tokensPerSecond.toFixed(0)} | ${p.tokensPerSecond.toFixed(0)} | ${(f.tokensPerSecond / p.tokensPerSecond).toFixed(2)} |${bCols} ${mib(f.maxRss)} | ${mib(p.maxRss)} | ${(f.maxRss / p.maxRss).toFixed(2)} | ${f.matmulGflops.toFixed(1)} / ${p.matmulGflops.toFixed(1)} | ${[f, p, ...(b ? [b] : [])].map((x) => x.tokensPerCpuSecond?.toFixed(0) ?? '?').join(' / ')} |`,
        );
      }
    }
  }
  for (const b of backends) console.log(`fedtune backend: ${b}`);
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
terminateWasmThreads();
