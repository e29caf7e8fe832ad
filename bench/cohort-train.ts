/**
 * Device-updates per second of local training on stories260K (int8, LoRA rank 4 on wq, wv, wo,
 * w2; one step of 4 × 64 tokens per update, as the fleet runs it): K devices trained together by
 * CohortTrainer, K = 1 … 32, in 1 and 2 worker threads (one wasm thread each), against
 * LocalTrainer training the same K devices one at a time. Each worker alternates the two sides
 * round by round (a cohort round, then K LocalTrainer runs, the order flipped every pair), so
 * both see the same machine load even on a shared machine. Training only: no coordinator,
 * sealing or upload. Run: npm run bench:cohort
 */
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CohortTrainer, defaultBasePath, FrozenBase, initBackend, LocalTrainer, LoraAdapter, readLlama2cCheckpoint, Tokenizer, type TrainOptions } from '../model/index.js';
import { defaultDataDir, defaultModelDir } from '../model/paths.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Case {
  readonly K: number;
  /** Updates each worker trains per side (after one warm-up round of each). */
  readonly updates: number;
  readonly worker: number;
}

interface Rates {
  readonly cohort: number;
  readonly local: number;
  /** CPU ms of the whole process per update, per side (meaningful with one worker: the main thread idles). */
  readonly cpuCohort: number;
  readonly cpuLocal: number;
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
  /** One round of K updates on one side; returns its seconds. */
  const cpu = { cohort: 0, local: 0 };
  const round = async (mode: 'cohort' | 'local', r: number): Promise<number> => {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    if (mode === 'cohort') {
      const out = await new CohortTrainer(base, ads.map((adapter, k) => ({ adapter, data: shards[k], options: opts(k, r) }))).run();
      if (!out.every((o) => o.ok)) throw new Error('a member failed');
    } else {
      for (let k = 0; k < c.K; k++) await new LocalTrainer(base, ads[k], shards[k], opts(k, r)).run();
    }
    const used = process.cpuUsage(c0);
    cpu[mode] += (used.user + used.system) / 1000;
    return (performance.now() - t0) / 1000;
  };
  await round('cohort', 0);
  await round('local', 0);
  cpu.cohort = cpu.local = 0;
  const rounds = Math.max(2, Math.ceil(c.updates / c.K));
  const seconds = { cohort: 0, local: 0 };
  for (let r = 1; r <= rounds; r++) {
    const order: ('cohort' | 'local')[] = r % 2 ? ['cohort', 'local'] : ['local', 'cohort'];
    for (const mode of order) seconds[mode] += await round(mode, r);
  }
  const n = rounds * c.K;
  const rates: Rates = { cohort: n / seconds.cohort, local: n / seconds.local, cpuCohort: cpu.cohort / n, cpuLocal: cpu.local / n };
  parentPort?.postMessage(rates);
}

async function runCase(K: number, workers: number, updates: number): Promise<Rates> {
  const results = await Promise.all(
    Array.from({ length: workers }, (_, w) => {
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { K, updates, worker: w } satisfies Case });
      return new Promise<Rates>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => (code !== 0 ? reject(new Error(`worker exited with ${code}`)) : undefined));
      }).finally(() => void worker.terminate());
    }),
  );
  // the workers run side by side: total rate = sum of their rates
  return { cohort: results.reduce((s, r) => s + r.cohort, 0), local: results.reduce((s, r) => s + r.local, 0), cpuCohort: results[0].cpuCohort, cpuLocal: results[0].cpuLocal };
}

async function main(): Promise<void> {
  const Ks = [1, 2, 4, 8, 16, 32];
  const updates = Number(process.env.COHORT_BENCH_UPDATES ?? 32);
  console.log(`load average at start: ${loadavg().map((x) => x.toFixed(2)).join(', ')} (≥ ${updates} updates per side per worker per case, at least 2 rounds)`);
  console.log('| K | 1 worker: cohort | 1 worker: LocalTrainer | ratio | CPU ms/update, cohort / LocalTrainer (1 worker) | 2 workers: cohort | 2 workers: LocalTrainer | ratio | load avg (1 min) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const K of Ks) {
    const row: string[] = [];
    for (const workers of [1, 2]) {
      const r = await runCase(K, workers, updates);
      row.push(r.cohort.toFixed(1), r.local.toFixed(1), `${(r.cohort / r.local).toFixed(2)}×`);
      if (workers === 1) row.push(`${r.cpuCohort.toFixed(1)} / ${r.cpuLocal.toFixed(1)}`);
    }
    console.log(`| ${K} | ${row.join(' | ')} | ${loadavg()[0].toFixed(1)} |`);
  }
  console.log(`load average at end: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`);
}

if (isMainThread) await main();
else await workerMain(workerData as Case);
