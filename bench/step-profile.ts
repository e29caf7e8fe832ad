/**
 * Where one LoRA training step's time goes, per TF.js kernel (issue 15, speed): every kernel
 * registered on the wasm backend is wrapped with a timer, then `steps` steps of the
 * side-by-side shape run after 2 warm-up steps. Prints, per kernel name, calls per step and ms
 * per step, and the time outside kernels (JS: tape, autograd, op dispatch, AdamW bookkeeping).
 * Run: npx tsc -p tsconfig.json && node dist/bench/step-profile.js [shape=stories260K] [threads=1] [steps=3]
 * (FEDTUNE_NATIVE=0 for the pure wasm path).
 */
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { BOS, FrozenBase, initBackend, LocalTrainer, LoraAdapter, randomBase } from '../model/index.js';
import { SHAPES } from './side-by-side-shapes.js';

const stats = new Map<string, { n: number; ms: number; cpu: number }>();
let depth = 0;
/** FEDTUNE_PROFILE_SHAPES=1: one row per kernel and input shapes. */
const byShape = process.env.FEDTUNE_PROFILE_SHAPES === '1';

/** Re-register every wasm kernel with a timer around it (outermost kernel only). */
function wrapKernels(): void {
  for (const k of tf.getKernelsForBackend('wasm')) {
    const f = k.kernelFunc;
    const name = k.kernelName;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      ...k,
      kernelFunc: ((args: Parameters<tf.KernelFunc>[0]) => {
        if (depth > 0) return f(args);
        depth++;
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        try {
          return f(args);
        } finally {
          const c = process.cpuUsage(c0);
          depth--;
          const key = byShape ? `${name} ${Object.values(args.inputs).map((t) => `[${t?.shape}]`).join(' ')}` : name;
          const s = stats.get(key) ?? { n: 0, ms: 0, cpu: 0 };
          s.n++;
          s.ms += performance.now() - t0;
          s.cpu += (c.user + c.system) / 1e3;
          stats.set(key, s);
        }
      }) as tf.KernelFunc,
    });
  }
}

async function main(): Promise<void> {
  const shape = process.argv[2] ?? 'stories260K';
  const threads = Number(process.argv[3] ?? 1);
  const steps = Number(process.argv[4] ?? 3);
  const info = await initBackend('wasm', { threads: 1, nativeThreads: threads });
  const s = SHAPES[shape];
  const base = new FrozenBase(randomBase(s.config, 1), 'int8');
  const tokens = Int32Array.from({ length: 20000 }, (_, i) => 3 + ((i * 7919) % (s.config.vocabSize - 3)));
  const ad = LoraAdapter.create(base.config, base.sha256, { rank: 8, targets: ['wq', 'wv'] });
  const opts = { startId: BOS, batchSize: s.batch, seqLen: s.seq, seed: 1 };
  await new LocalTrainer(base, ad, tokens, { ...opts, steps: 2 }).run();
  wrapKernels();
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await new LocalTrainer(base, ad, tokens, { ...opts, steps }).run();
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(u0);
  const rows = [...stats.entries()].sort((a, b) => b[1].cpu - a[1].cpu);
  const inKernels = rows.reduce((t, [, v]) => t + v.ms, 0);
  const cpuKernels = rows.reduce((t, [, v]) => t + v.cpu, 0);
  const cpuTotal = (cpu.user + cpu.system) / 1e3;
  const calls = rows.reduce((t, [, v]) => t + v.n, 0);
  console.log(`${shape}, ${info.description}; ${steps} steps, ${r.tokensPerSecond.toFixed(0)} tokens/s, ${(wall / steps).toFixed(1)} ms/step wall, ${((cpu.user + cpu.system) / 1e3 / steps).toFixed(1)} ms/step CPU; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`kernel calls per step ${(calls / steps).toFixed(0)}; in kernels ${(inKernels / steps).toFixed(1)} ms/step wall, ${(cpuKernels / steps).toFixed(1)} CPU; outside (JS) ${((wall - inKernels) / steps).toFixed(1)} wall, ${((cpuTotal - cpuKernels) / steps).toFixed(1)} CPU`);
  console.log('| kernel | calls/step | ms/step wall | ms/step CPU | share of CPU |');
  console.log('|---|---|---|---|---|');
  for (const [name, v] of rows.slice(0, 25)) console.log(`| ${name} | ${(v.n / steps).toFixed(0)} | ${(v.ms / steps).toFixed(1)} | ${(v.cpu / steps).toFixed(1)} | ${((100 * v.cpu) / cpuTotal).toFixed(1)} % |`);
}

await main();
