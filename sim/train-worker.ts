/**
 * Worker-thread entry of a baseline trainer (local-only or centralized LoRA): a fresh adapter
 * trained with the program's recipe — generative replay included — on given text, returned as
 * its flat values.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend, LocalTrainer, LoraAdapter, mixReplay, openBase, sampleReplayPool, type LoraConfig } from '../model/index.js';
import type { DeviceTraining } from '../model/device-training.js';

/** What the parent passes to a training worker. */
export interface TrainWorkerData {
  readonly basePath: string;
  readonly tokenizerPath: string;
  readonly lora: LoraConfig;
  readonly training: DeviceTraining;
  /** Each job: its text (or texts, pooled) and steps. */
  readonly jobs: readonly { readonly name: string; readonly texts: readonly string[]; readonly steps: number; readonly seed: number }[];
}

/** One finished job. */
export interface TrainWorkerResult {
  readonly name: string;
  readonly flat: Float32Array;
  readonly seconds: number;
  readonly tokensPerSecond: number;
}

const port = parentPort;
if (port) {
  const d = workerData as TrainWorkerData;
  (async () => {
    await initBackend();
    const { base, tokenizer } = openBase(d.basePath, d.training.quant, { tokenizerPath: d.tokenizerPath, seed: 1 });
    for (const job of d.jobs) {
      const t0 = performance.now();
      // each text is a device's; replay is mixed per device as the device itself would
      const streams = job.texts.map((t, i) => {
        const local = tokenizer.encode(t, { bos: false });
        const f = d.training.replayFraction ?? 0;
        if (!(f > 0)) return local;
        const pool = sampleReplayPool(base, { tokenizer, tokens: d.training.replayTokens ?? 8192, seed: job.seed + i });
        return mixReplay(local, pool, f, (job.seed + i) % pool.length);
      });
      const tokens = new Int32Array(streams.reduce((s, x) => s + x.length, 0));
      let off = 0;
      for (const s of streams) {
        tokens.set(s, off);
        off += s.length;
      }
      const adapter = LoraAdapter.create(base.config, base.sha256, d.lora);
      const r = await new LocalTrainer(base, adapter, tokens, { ...d.training, startId: tokenizer.startId, steps: job.steps, timeBudgetMs: undefined, seed: job.seed }).run();
      const flat = adapter.toFlat();
      adapter.dispose();
      const res: TrainWorkerResult = { name: job.name, flat, seconds: (performance.now() - t0) / 1000, tokensPerSecond: r.tokensPerSecond };
      port.postMessage({ type: 'result', result: res }, [flat.buffer as ArrayBuffer]);
    }
    base.dispose();
  })()
    .catch((e: unknown) => port.postMessage({ type: 'error', message: (e as Error).message ?? String(e) }))
    .finally(() => port.close());
}
