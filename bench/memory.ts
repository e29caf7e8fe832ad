/**
 * Peak resident memory of a device process that loads a ≥ 20M-parameter base and trains a LoRA
 * adapter for two steps (batch 1 × 64 tokens, as a small device would), with the base held as fp32 / int8 / int4. Random weights (memory does
 * not depend on values), written once to a temporary llama2.c checkpoint; each case runs in its
 * own process so peaks do not mix. Run: npm run bench:memory
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { BOS, encodeLlama2cCheckpoint, initBackend, loadBase, LocalTrainer, LoraAdapter, randomBase, type LlamaConfig, type QuantMode } from '../model/index.js';

const CONFIG: LlamaConfig = { dim: 512, hiddenDim: 1376, nLayers: 8, nHeads: 8, nKvHeads: 4, vocabSize: 32000, seqLen: 256, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };

async function child(path: string, quant: QuantMode): Promise<void> {
  await initBackend('wasm');
  const t0 = performance.now();
  const base = loadBase(path, quant, { uncalibrated: true });
  const loadS = (performance.now() - t0) / 1000;
  (globalThis as { gc?: () => void }).gc?.();
  const rssAfterLoad = process.memoryUsage().rss;
  const tokens = Int32Array.from({ length: 4096 }, (_, i) => 3 + ((i * 7919) % (CONFIG.vocabSize - 3)));
  const ad = LoraAdapter.create(base.config, base.sha256, { rank: 8, targets: ['wq', 'wk', 'wv', 'wo'] });
  await new LocalTrainer(base, ad, tokens, { startId: BOS, steps: 2, batchSize: 1, seqLen: 64, seed: 1 }).run();
  const m = base.memory();
  process.stdout.write(
    `${JSON.stringify({ quant, params: m.params, baseBytes: m.bytes, bytesPerParam: m.bytesPerParam, loadSeconds: loadS, rssAfterLoad, peakRss: process.resourceUsage().maxRSS * 1024, wasmBytes: tf.memory().numBytes })}\n`,
  );
}

async function main(): Promise<void> {
  const [, , cmd, path, quant] = process.argv;
  if (cmd === 'child') return child(path, quant as QuantMode);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-mem-'));
  const file = join(dir, 'random-41M.bin');
  writeFileSync(file, encodeLlama2cCheckpoint(randomBase(CONFIG, 7).weights));
  const mb = (b: number): string => (b / 2 ** 20).toFixed(0);
  console.log(`base: random ${CONFIG.dim}-dim, ${CONFIG.nLayers} layers, vocab ${CONFIG.vocabSize}; checkpoint ${mb(statSync(file).size)} MiB`);
  console.log('| base held as | params | base bytes (MiB) | bytes/param | load s | RSS after load (MiB) | peak RSS (MiB) |');
  console.log('|---|---|---|---|---|---|---|');
  try {
    for (const q of ['none', 'int8', 'int4'] as const) {
      const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), 'child', file, q], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(r.stderr);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
      console.log(`| ${q === 'none' ? 'fp32' : q} | ${(j.params / 1e6).toFixed(1)}M | ${mb(j.baseBytes)} | ${j.bytesPerParam.toFixed(3)} | ${j.loadSeconds.toFixed(1)} | ${mb(j.rssAfterLoad)} | ${mb(j.peakRss)} |`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
