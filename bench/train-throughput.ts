/**
 * LoRA training throughput on the wasm backend: tokens/s and the ratio of training FLOP/s to
 * the same run's plain 1024³ matMul FLOP/s, for stories260K and a random dim-256 config, with
 * tfjs's stock kernels or fedtune's workarounds (one thread, and two). Run: npm run bench:train
 * (one child process per case: stock kernels cannot be un-installed within a process).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import {
  BOS,
  headSize,
  initBackend,
  LocalTrainer,
  LoraAdapter,
  MATRIX_NAMES,
  matrixShape,
  randomBase,
  readLlama2cCheckpoint,
  setKernelMode,
  terminateWasmThreads,
  defaultBasePath,
  FrozenBase,
  type LlamaConfig,
  type LoadedBase,
} from '../model/index.js';

const CONFIGS: Record<string, { load: () => LoadedBase; batch: number; seq: number }> = {
  stories260K: { load: () => readLlama2cCheckpoint(defaultBasePath()), batch: 8, seq: 128 },
  dim256: {
    load: () =>
      randomBase({ dim: 256, hiddenDim: 768, nLayers: 4, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 256, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 }, 1),
    batch: 8,
    seq: 128,
  },
};
const RANK = 8;

/** FLOPs of one LoRA training step: frozen matrices need dx only; attention and LoRA need both. */
function stepFlops(c: LlamaConfig, batch: number, T: number): number {
  const N = batch * T;
  let dense = 0;
  let lora = 0;
  for (const name of MATRIX_NAMES) {
    const [o, i] = matrixShape(c, name);
    dense += 2 * N * o * i * c.nLayers;
    lora += 2 * N * RANK * (o + i) * c.nLayers;
  }
  dense += 2 * N * c.vocabSize * c.dim;
  const attn = 2 * 2 * batch * c.nHeads * T * T * headSize(c) * c.nLayers;
  return 2 * dense + 3 * attn + 3 * lora;
}

function plainMatMulFlops(): number {
  const n = 1024;
  return tf.tidy(() => {
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    tf.matMul(a, b).dataSync();
    const t0 = performance.now();
    const reps = 8;
    for (let i = 0; i < reps; i++) tf.matMul(a, b).dataSync();
    return (2 * n ** 3 * reps) / ((performance.now() - t0) / 1000);
  });
}

async function child(config: string, caseName: string, steps: number): Promise<void> {
  const mode = caseName === 'stock' ? 'stock' : 'fast';
  await initBackend('wasm', { stockKernels: mode === 'stock', threads: caseName === 'fast-2-threads' ? 2 : 1 });
  setKernelMode(mode);
  const cfg = CONFIGS[config];
  const loaded = cfg.load();
  const base = new FrozenBase(loaded, 'int8');
  const c = base.config;
  const tokens = Int32Array.from({ length: 20000 }, (_, i) => 3 + ((i * 7919) % (c.vocabSize - 3)));
  const ad = LoraAdapter.create(c, base.sha256, { rank: RANK, targets: [...MATRIX_NAMES] });
  await new LocalTrainer(base, ad, tokens, { startId: BOS, steps: 2, batchSize: cfg.batch, seqLen: cfg.seq, seed: 1 }).run();
  const mm1 = plainMatMulFlops();
  const r = await new LocalTrainer(base, ad, tokens, { startId: BOS, steps, batchSize: cfg.batch, seqLen: cfg.seq, seed: 1 }).run();
  const mm2 = plainMatMulFlops();
  const flops = (stepFlops(c, cfg.batch, cfg.seq) * r.steps) / (r.elapsedMs / 1000);
  const mm = (mm1 + mm2) / 2;
  process.stdout.write(`${JSON.stringify({ config, mode: caseName, steps: r.steps, tokensPerSecond: r.tokensPerSecond, trainGflops: flops / 1e9, matmulGflops: mm / 1e9, ratio: flops / mm })}\n`);
}

async function main(): Promise<void> {
  const [, , cmd, config, mode, steps] = process.argv;
  if (cmd === 'child') {
    await child(config, mode, Number(steps));
    terminateWasmThreads();
    return;
  }
  const stepsFor = (cfgName: string, m: string): number => (m === 'stock' ? 4 : cfgName === 'dim256' ? 10 : 20);
  console.log('| config | kernels | tokens/s | training GFLOP/s | plain matMul GFLOP/s | ratio |');
  console.log('|---|---|---|---|---|---|');
  for (const cfgName of Object.keys(CONFIGS)) {
    for (const m of ['stock', 'fast', 'fast-2-threads']) {
      const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), 'child', cfgName, m, String(stepsFor(cfgName, m))], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokensPerSecond: number; trainGflops: number; matmulGflops: number; ratio: number };
      console.log(`| ${cfgName} | ${m} | ${j.tokensPerSecond.toFixed(0)} | ${j.trainGflops.toFixed(2)} | ${j.matmulGflops.toFixed(1)} | ${j.ratio.toFixed(3)} |`);
    }
  }
}

await main();
