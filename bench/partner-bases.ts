/**
 * What a device pays for a partner base, measured against llama.cpp: Qwen2.5-0.5B, SmolLM2-135M
 * and Qwen3-0.6B at their real shapes with random weights (time and memory do not depend on the
 * values), written as Q8_0 and Q4_K_M-like GGUF files into a temp dir (deleted afterwards). For
 * each file and fedtune quant mode (int8, int4, native): load seconds, bytes per parameter, peak
 * RSS while training LoRA, training tokens/s and FLOP ratio to a plain matMul, generation tokens/s;
 * and llama.cpp's generation tokens/s and peak RSS on the same file with the same thread count.
 * Every case runs in its own child process. Run: npm run bench:bases
 * Options: --models=Qwen2.5-0.5B,… --threads=1,2 --files=Q8_0,Q4_K_M
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { terminateWasmThreads, type QuantMode } from '../model/index.js';
import { fedtuneCase, llamaCppCase, type FedtuneResult, type LlamaCppResult } from './partner-cases.js';
import { PARTNER_MODELS, writePartnerGguf, type PartnerFileType } from './partner-models.js';

const MODES: readonly QuantMode[] = ['int8', 'int4', 'native'];
const GiB = 2 ** 30;
const MiB = 2 ** 20;

function runChild<T>(args: string[]): T {
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-old-space-size=8192', fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`child ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as T;
}

function option(name: string, all: readonly string[]): string[] {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3).split(',') : [...all];
}

async function main(): Promise<void> {
  const [, , cmd, path, mode, threads] = process.argv;
  if (cmd === 'fedtune') {
    const r = await fedtuneCase(path, mode as QuantMode, Number(threads));
    terminateWasmThreads();
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  if (cmd === 'llamacpp') {
    process.stdout.write(`${JSON.stringify(await llamaCppCase(path, Number(threads)))}\n`);
    return;
  }
  const models = PARTNER_MODELS.filter((m) => option('models', PARTNER_MODELS.map((x) => x.name)).includes(m.name));
  const files = option('files', ['Q8_0', 'Q4_K_M']) as PartnerFileType[];
  const threadCounts = option('threads', ['1']).map(Number);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-bases-'));
  console.log(`node ${process.version}, ${new Date().toISOString()}; train: LoRA r8 on wq,wv, batch 1 × 256, gradient checkpointing, 1 step after a 16-token warm-up step; gen: 8 new tokens after a short prompt`);
  console.log('| model | file | threads | mode | load s | bytes/param | RSS after load MiB | peak RSS train MiB | train tok/s | train GFLOP/s | matMul GFLOP/s | FLOP ratio | gen tok/s | llama.cpp gen tok/s | llama.cpp peak RSS MiB | gen ratio | RSS ratio (train / llama.cpp) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  try {
    for (const model of models) {
      for (const file of files) {
        const gguf = join(dir, `${model.name}-${file}.gguf`);
        const t0 = performance.now();
        writePartnerGguf(model, file, gguf);
        console.error(`wrote ${gguf}: ${(statSync(gguf).size / MiB).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
        for (const th of threadCounts) {
          const ll = runChild<LlamaCppResult>(['llamacpp', gguf, '', String(th)]);
          for (const m of MODES) {
            const f = runChild<FedtuneResult>(['fedtune', gguf, m, String(th)]);
            console.error(JSON.stringify({ model: model.name, file, th, m, ...f, llama: ll }));
            console.log(
              `| ${model.name} | ${file} | ${th} | ${m} | ${f.loadSeconds.toFixed(1)} | ${f.bytesPerParam.toFixed(3)} | ${(f.rssAfterLoad / MiB).toFixed(0)} | ${(f.peakRssTrain / MiB).toFixed(0)} (${(f.peakRssTrain / GiB).toFixed(2)} GiB) | ${f.trainTokensPerSecond.toFixed(1)} | ${f.trainGflops.toFixed(2)} | ${f.matmulGflops.toFixed(1)} | ${f.flopRatio.toFixed(2)} | ${f.genTokensPerSecond.toFixed(2)} | ${ll.genTokensPerSecond.toFixed(1)} | ${(ll.peakRss / MiB).toFixed(0)} | ${(f.genTokensPerSecond / ll.genTokensPerSecond).toFixed(3)} | ${(f.peakRssTrain / ll.peakRss).toFixed(1)} |`,
            );
          }
        }
        rmSync(gguf, { force: true });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
