/**
 * The issue-15 LoRA step with the native SGEMM (native/) on and off, at 1 and 2 threads: dim 256,
 * 4 layers, 8 heads, hidden 688, vocabulary 512, sequence 128, batch 8, rank 8 on wq and wv,
 * int8 frozen base, AdamW; and the stories260K shape (sequence 256). Each case runs in its own
 * process; the cases alternate within each round (wasm / native, 1 then 2 threads; native-2w1 =
 * single-threaded wasm with 2 native threads), `rounds` times.
 * Prints tokens/s, tokens per CPU second (on a busy machine, what one quiet core would do), the
 * same process's plain 1024³ matMul GFLOP/s and peak RSS.
 * Run: npm run build && node dist/bench/native-train.js [rounds=2] [steps=6]
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { BOS, defaultBasePath, FrozenBase, initBackend, LocalTrainer, LoraAdapter, randomBase, readLlama2cCheckpoint, terminateWasmThreads, type LoadedBase } from '../model/index.js';

const CONFIGS: Record<string, { load: () => LoadedBase; batch: number; seq: number }> = {
  'issue-15 dim256': {
    load: () => randomBase({ dim: 256, hiddenDim: 688, nLayers: 4, nHeads: 8, nKvHeads: 8, vocabSize: 512, seqLen: 256, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 1),
    batch: 8,
    seq: 128,
  },
  'stories260K seq256': { load: () => readLlama2cCheckpoint(defaultBasePath()), batch: 8, seq: 256 },
};
// native-2w1: wasm single-threaded, native products on 2 threads
const CASES = ['wasm-1', 'native-1', 'wasm-2', 'native-2', 'native-2w1'] as const;

function matMulGflops(): number {
  return tf.tidy((): number => {
    const n = 1024;
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    tf.matMul(a, b).dataSync();
    const reps = 6;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) tf.matMul(a, b).dataSync();
    return (2 * n ** 3 * reps) / ((performance.now() - t0) / 1e3) / 1e9;
  });
}

async function child(config: string, caseName: string, steps: number): Promise<void> {
  const [kind, t] = caseName.split('-');
  const threads = Number(t.replace('w1', ''));
  const info = await initBackend('wasm', { threads: t.endsWith('w1') ? 1 : threads, native: kind === 'native', nativeThreads: threads });
  if (kind === 'native' && !info.description.includes('native')) throw new Error(`the native addon did not load (${info.description})`);
  const cfg = CONFIGS[config];
  const base = new FrozenBase(cfg.load(), 'int8');
  const c = base.config;
  const tokens = Int32Array.from({ length: 40000 }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)));
  const ad = LoraAdapter.create(c, base.sha256, { rank: 8, targets: ['wq', 'wv'] });
  const opts = { startId: BOS, batchSize: cfg.batch, seqLen: cfg.seq, seed: 1 };
  await new LocalTrainer(base, ad, tokens, { ...opts, steps: 2 }).run();
  const u0 = process.cpuUsage();
  const r = await new LocalTrainer(base, ad, tokens, { ...opts, steps }).run();
  const u = process.cpuUsage(u0);
  const mm = matMulGflops();
  process.stdout.write(`${JSON.stringify({ tokensPerSecond: r.tokensPerSecond, tokensPerCpuSecond: r.tokens / ((u.user + u.system) / 1e6), matmulGflops: mm, peakRssMiB: (process.resourceUsage().maxRSS * 1024) / 2 ** 20, backend: info.description })}\n`);
}

async function main(): Promise<void> {
  const [, , cmd, a1, a2, a3] = process.argv;
  if (cmd === 'child') {
    await child(a1, a2, Number(a3));
    terminateWasmThreads();
    return;
  }
  const rounds = Number(cmd ?? 2);
  const steps = Number(a1 ?? 6);
  const load0 = loadavg();
  const results: Record<string, { tps: number[]; cps: number[]; mm: number[]; rss: number[]; backend: string }> = {};
  for (let round = 0; round < rounds; round++) {
    for (const config of Object.keys(CONFIGS)) {
      for (const cs of CASES) {
        const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child', config, cs, String(steps)], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(r.stderr);
        const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokensPerSecond: number; tokensPerCpuSecond: number; matmulGflops: number; peakRssMiB: number; backend: string };
        const k = `${config}|${cs}`;
        results[k] ??= { tps: [], cps: [], mm: [], rss: [], backend: j.backend };
        results[k].tps.push(j.tokensPerSecond);
        results[k].cps.push(j.tokensPerCpuSecond);
        results[k].mm.push(j.matmulGflops);
        results[k].rss.push(j.peakRssMiB);
      }
    }
  }
  const load1 = loadavg();
  const mean = (x: number[]): number => x.reduce((s, v) => s + v, 0) / x.length;
  console.log(`${cpus().length} cores (${cpus()[0]?.model.trim()}); load average before ${load0.map((x) => x.toFixed(2)).join(' ')}, after ${load1.map((x) => x.toFixed(2)).join(' ')}; ${rounds} rounds × ${steps} steps`);
  console.log('| config | case | tokens/s (mean; per round) | tokens per CPU second | 1024³ matMul GFLOP/s | peak RSS MiB | backend |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [k, v] of Object.entries(results)) {
    const [config, cs] = k.split('|');
    console.log(`| ${config} | ${cs} | ${mean(v.tps).toFixed(0)} (${v.tps.map((x) => x.toFixed(0)).join(', ')}) | ${mean(v.cps).toFixed(0)} | ${mean(v.mm).toFixed(1)} | ${Math.max(...v.rss).toFixed(0)} | ${v.backend} |`);
  }
}

await main();
