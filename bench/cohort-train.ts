/**
 * Device-updates per second of local training on stories260K (int8, LoRA rank 4 on wq, wv, wo,
 * w2; one step of 4 × 64 tokens per update, as the fleet runs it): K devices trained together by
 * CohortTrainer, K = 1 … 32, in 1 and 2 worker threads (one wasm thread each), against
 * LocalTrainer one device at a time measured between them (alternating, so both see the same
 * machine load). Training only: no coordinator, sealing or upload. Run: npm run bench:cohort
 */
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CohortTrainer, defaultBasePath, FrozenBase, initBackend, LocalTrainer, LoraAdapter, readLlama2cCheckpoint, Tokenizer, type TrainOptions } from '../model/index.js';
import { defaultDataDir, defaultModelDir } from '../model/paths.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Case {
  readonly mode: 'cohort' | 'local';
  readonly K: number;
  /** Updates each worker trains (after one warm-up round). */
  readonly updates: number;
  readonly worker: number;
}

const LORA = { rank: 4, alpha: 8, targets: ['wq', 'wv', 'wo', 'w2'] as ('wq' | 'wv' | 'wo' | 'w2')[], seed: 1 };

async function workerMain(c: Case): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  const base = new FrozenBase(readLlama2cCheckpoint(defaultBasePath()), 'int8');
  const tok = Tokenizer.fromFile(join(defaultModelDir(), 'tok512.bin'), base.config.vocabSize);
  const text = readFileSync(join(defaultDataDir(), 'wizard-of-oz.txt'), 'utf8');
  // each device its own shard
  const shards = Array.from({ length: c.K }, (_, k) => tok.encode(text.slice((k * 4000 + c.worker * 997) % 150_000, ((k * 4000 + c.worker * 997) % 150_000) + 4000), { bos: false }));
  const opts = (k: number, round: number): TrainOptions => ({ startId: tok.startId, steps: 1, batchSize: 4, seqLen: 64, lr: 3e-3, seed: 1000 * round + k });
  const ads = shards.map(() => LoraAdapter.create(base.config, base.sha256, LORA));
  const round = async (r: number): Promise<void> => {
    if (c.mode === 'cohort') {
      const out = await new CohortTrainer(base, ads.map((adapter, k) => ({ adapter, data: shards[k], options: opts(k, r) }))).run();
      if (!out.every((o) => o.ok)) throw new Error('a member failed');
    } else {
      for (let k = 0; k < c.K; k++) await new LocalTrainer(base, ads[k], shards[k], opts(k, r)).run();
    }
  };
  await round(0);
  const rounds = Math.max(1, Math.ceil(c.updates / c.K));
  const t0 = performance.now();
  for (let r = 1; r <= rounds; r++) await round(r);
  const seconds = (performance.now() - t0) / 1000;
  parentPort?.postMessage({ updates: rounds * c.K, seconds });
}

async function runCase(mode: Case['mode'], K: number, workers: number, updates: number): Promise<number> {
  const results = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { mode, K, updates, worker: w } satisfies Case });
      return new Promise<{ updates: number; seconds: number }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => (code !== 0 ? reject(new Error(`worker exited with ${code}`)) : undefined));
      }).finally(() => void worker.terminate());
    }),
  );
  // the workers run side by side: total rate = sum of their rates
  return results.reduce((s, r) => s + r.updates / r.seconds, 0);
}

async function main(): Promise<void> {
  const Ks = [1, 2, 4, 8, 16, 32];
  const updates = Number(process.env.COHORT_BENCH_UPDATES ?? 64);
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(', ')} (${updates} updates per worker per case)`);
  console.log('| K | 1 worker: cohort | 1 worker: LocalTrainer | 2 workers: cohort | 2 workers: LocalTrainer |');
  console.log('|---|---|---|---|---|');
  for (const K of Ks) {
    const row: string[] = [];
    // alternate the compared sides: LocalTrainer, cohort, for 1 then 2 workers
    for (const workers of [1, 2]) {
      const local = await runCase('local', 1, workers, Math.min(updates, 32));
      const cohort = await runCase('cohort', K, workers, Math.max(updates, K));
      row.push(cohort.toFixed(1), local.toFixed(1));
    }
    console.log(`| ${K} | ${row.join(' | ')} |`);
  }
  console.log(`load average at end: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
}

if (isMainThread) await main();
else await workerMain(workerData as Case);
