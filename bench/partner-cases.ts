/**
 * One bench case per process (so process.resourceUsage().maxRSS is that case's alone): fedtune
 * loading a partner GGUF at a quant mode, training LoRA (rank 8 on wq, wv; batch 1 × 256) and
 * generating with the KV cache; or llama.cpp generating from the same file. Used by
 * bench/partner-bases.ts.
 */
import * as tf from '@tensorflow/tfjs';
import {
  closeGgufFile,
  generate,
  ggufTextTokenizer,
  headSize,
  initBackend,
  loadGgufBase,
  LocalTrainer,
  LoraAdapter,
  MATRIX_NAMES,
  matrixShape,
  openGgufFile,
  type LlamaConfig,
  type QuantMode,
  type TextTokenizer,
} from '../model/index.js';
import { openLlamaCpp } from '../test/support/llama-cpp.js';

/** LoRA rank, targets and training shape of every case (gradient checkpointing on: without it 256 tokens overflow the 4 GiB wasm heap). */
export const TRAIN = { rank: 8, targets: ['wq', 'wv'] as const, seqLen: 256, batch: 1, steps: 1, checkpoint: true };
/** New tokens generated (after a short prompt) in every case. */
export const GEN_TOKENS = 8;
const PROMPT = 'Hello there, the quick brown fox';

/** What a fedtune case reports. */
export interface FedtuneResult {
  readonly loadSeconds: number;
  readonly params: number;
  readonly baseBytes: number;
  readonly bytesPerParam: number;
  readonly rssAfterLoad: number;
  readonly peakRssTrain: number;
  readonly trainTokensPerSecond: number;
  readonly trainGflops: number;
  readonly matmulGflops: number;
  readonly flopRatio: number;
  readonly genTokensPerSecond: number;
  readonly peakRssAll: number;
  readonly wasmBytes: number;
}

/** What a llama.cpp case reports. */
export interface LlamaCppResult {
  readonly genTokensPerSecond: number;
  readonly peakRss: number;
  readonly promptTokens: number;
}

/**
 * Useful FLOPs of one LoRA training step: forward and dx through every frozen matrix (the LoRA
 * sits in layer 0 too, so the gradient flows through all layers), attention forward (QKᵀ, AV)
 * and its two backward products each, LoRA forward and both gradients, and the head forward and
 * dx (the chunked head's recomputation of the logits in backprop is not counted).
 */
export function loraStepFlops(c: LlamaConfig, batch: number, T: number, rank: number, targets: readonly string[]): number {
  const N = batch * T;
  let dense = 0;
  let lora = 0;
  for (const name of MATRIX_NAMES) {
    const [o, i] = matrixShape(c, name);
    dense += 2 * N * o * i * c.nLayers;
    if (targets.includes(name)) lora += 2 * N * rank * (o + i) * c.nLayers;
  }
  dense += 2 * N * c.vocabSize * c.dim;
  const attn = 2 * 2 * batch * c.nHeads * T * T * headSize(c) * c.nLayers;
  return 2 * dense + 3 * attn + 3 * lora;
}

/**
 * FLOP/s of a plain float32 matMul [T, dim] × [dim, hidden] (the FFN's shape at this sequence
 * length), with a new weight tensor for every product as the frozen base supplies them (tfjs
 * wasm 4.22 runs a matMul whose weight tensor it has seen before ~8× slower: measured 1.5 vs
 * 13 GFLOP/s at this shape).
 */
function plainMatMulFlops(c: LlamaConfig, T: number): number {
  return tf.tidy(() => {
    const a = tf.randomNormal([T, c.dim]);
    const data = (tf.randomNormal([c.dim, c.hiddenDim]) as tf.Tensor2D).dataSync() as Float32Array;
    tf.tidy(() => tf.matMul(a, tf.tensor2d(data, [c.dim, c.hiddenDim])).dataSync());
    let reps = 0;
    let ms = 0;
    while (ms < 1500 || reps < 3) {
      tf.tidy(() => {
        const b = tf.tensor2d(data, [c.dim, c.hiddenDim]); // the upload is not timed
        const t0 = performance.now();
        tf.matMul(a, b).dataSync();
        ms += performance.now() - t0;
      });
      reps++;
    }
    return (2 * T * c.dim * c.hiddenDim * reps) / (ms / 1000);
  });
}

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;
const log = (stage: string): void => void process.stderr.write(`[${stage}] peak RSS ${(peakRss() / 2 ** 20).toFixed(0)} MiB, tf ${(tf.memory().numBytes / 2 ** 20).toFixed(0)} MiB\n`);

/** A tokenizer that never stops a generation (random weights may draw a stop token). */
function neverStop(tok: TextTokenizer): TextTokenizer {
  return Object.assign(Object.create(tok) as TextTokenizer, { isStop: () => false });
}

/** Load, train and generate with fedtune; prints one JSON line. */
export async function fedtuneCase(path: string, mode: QuantMode, threads: number): Promise<FedtuneResult> {
  await initBackend('wasm', { threads });
  const t0 = performance.now();
  const base = loadGgufBase(path, mode);
  const loadSeconds = (performance.now() - t0) / 1000;
  (globalThis as { gc?: () => void }).gc?.();
  const rssAfterLoad = process.memoryUsage().rss;
  log(`loaded in ${loadSeconds.toFixed(1)} s`);
  const c = base.config;
  const tokens = Int32Array.from({ length: 8192 }, (_, i) => (i * 7919) % (c.vocabSize - 3));
  const adapter = LoraAdapter.create(c, base.sha256, { rank: TRAIN.rank, targets: [...TRAIN.targets] });
  const opts = { startId: c.vocabSize - 3, batchSize: TRAIN.batch, seqLen: TRAIN.seqLen, seed: 1, checkpoint: TRAIN.checkpoint };
  await new LocalTrainer(base, adapter, tokens, { ...opts, seqLen: 16, steps: 1 }).run(); // warm-up (short: every step dequantizes the whole base anyway)
  log('warm-up step');
  const mm1 = plainMatMulFlops(c, TRAIN.seqLen);
  const r = await new LocalTrainer(base, adapter, tokens, { ...opts, steps: TRAIN.steps }).run();
  const mm2 = plainMatMulFlops(c, TRAIN.seqLen);
  const peakRssTrain = peakRss();
  log(`trained ${r.tokensPerSecond.toFixed(1)} tok/s`);
  const flops = (loraStepFlops(c, TRAIN.batch, TRAIN.seqLen, TRAIN.rank, TRAIN.targets) * r.steps) / (r.elapsedMs / 1000);
  const mm = (mm1 + mm2) / 2;
  const file = openGgufFile(path);
  let tokenizer: TextTokenizer;
  try {
    tokenizer = neverStop(ggufTextTokenizer(file));
  } finally {
    closeGgufFile(file);
  }
  const times: number[] = [];
  generate(base, tokenizer, PROMPT, { maxTokens: GEN_TOKENS, onToken: () => times.push(performance.now()) });
  const genTokensPerSecond = ((times.length - 1) * 1000) / (times[times.length - 1] - times[0]);
  return {
    loadSeconds,
    ...(({ params, bytes, bytesPerParam }) => ({ params, baseBytes: bytes, bytesPerParam }))(base.memory()),
    rssAfterLoad,
    peakRssTrain,
    trainTokensPerSecond: r.tokensPerSecond,
    trainGflops: flops / 1e9,
    matmulGflops: mm / 1e9,
    flopRatio: flops / mm,
    genTokensPerSecond,
    peakRssAll: peakRss(),
    wasmBytes: tf.memory().numBytes,
  };
}

/** Generate with llama.cpp (its defaults: F16 KV cache, flash attention as it decides). */
export async function llamaCppCase(path: string, threads: number): Promise<LlamaCppResult> {
  const m = await openLlamaCpp(path, { threads, precise: false, contextSize: 512 });
  try {
    const prompt = m.tokenize(PROMPT, { special: false, bos: m.addBos });
    await m.generationStats(prompt, 4); // warm-up
    const s = await m.generationStats(prompt, GEN_TOKENS);
    return { genTokensPerSecond: s.tokensPerSecond, peakRss: peakRss(), promptTokens: prompt.length };
  } finally {
    await m.dispose();
  }
}
