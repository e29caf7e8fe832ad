/**
 * llama.cpp as an independent oracle: a small wrapper around node-llama-cpp (a pinned
 * devDependency with prebuilt CPU binaries) for tests and benches. Nothing is downloaded or
 * built at run time (`build: 'never'`, `gpu: false`). Kept free of mocha so bench/ can use it.
 *
 * By default the KV cache is float32 and flash attention is off (see OpenLlamaCppOptions.precise).
 *
 * Every call starts from an empty KV cache (the model's single sequence is cleared first) and
 * calls on one model run one at a time, so results never depend on what ran before.
 * Sampling is llama.cpp's greedy sampler only (temperature 0): no repeat/DRY penalty, no token
 * bias, no top-k/top-p/min-p, so the probabilities are the softmax of the raw logits.
 */
import { stat } from 'node:fs/promises';
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from 'node-llama-cpp';
import { ModelFormatError } from '../../model/checkpoint.js';

/** Timings of one greedy run (see {@link LlamaCppModel.generationStats}). */
export interface LlamaCppGenerationStats {
  /** Prompt length in tokens. */
  readonly promptTokens: number;
  /** New tokens generated (= n). */
  readonly generatedTokens: number;
  /** Wall time from the start to the first new token (prompt prefill + first sample), ms. */
  readonly prefillMs: number;
  /** Wall time for the remaining n - 1 tokens (one decode step each), ms. */
  readonly decodeMs: number;
  /** Decode throughput: (n - 1) / decodeMs, in tokens per second. */
  readonly tokensPerSecond: number;
  /** Threads llama.cpp used for the run. */
  readonly threads: number;
}

/** A GGUF model loaded by llama.cpp (through node-llama-cpp), used as a reference runtime. */
export interface LlamaCppModel {
  /** llama.cpp's tokenization; `special` parses special-token text (e.g. `<s>`), `bos` prepends the model's BOS when it has one. */
  tokenize(text: string, opts: { special: boolean; bos: boolean }): number[];
  /** llama.cpp's detokenization (special tokens render as nothing). */
  detokenize(ids: readonly number[]): string;
  /** The model's BOS id (GGUF tokenizer.ggml.bos_token_id), if any. */
  readonly bosId: number | undefined;
  /** The model's EOS id (GGUF tokenizer.ggml.eos_token_id), if any. */
  readonly eosId: number | undefined;
  /** Whether llama.cpp prepends BOS for this model (GGUF tokenizer.ggml.add_bos_token, or the vocabulary type's default). */
  readonly addBos: boolean;
  /** Number of tokens in the vocabulary (= length of the logits). */
  readonly vocabSize: number;
  /** Usable context in tokens: prompt length + n must not exceed it. */
  readonly contextSize: number;
  /**
   * Greedy (argmax) continuation of `promptIds` by `n` new tokens. Does not stop at EOS
   * unless `opts.stopAtEos` (then EOS is not included and fewer than n ids may come back).
   */
  greedy(promptIds: readonly number[], n: number, opts?: { stopAtEos?: boolean }): Promise<number[]>;
  /** Full-vocabulary softmax of the raw logits after the last prompt token (temperature 1, no penalties), indexed by token id. */
  nextTokenProbs(promptIds: readonly number[]): Promise<Float32Array>;
  /** Time a greedy run of n ≥ 2 new tokens (EOS does not stop it). */
  generationStats(promptIds: readonly number[], n: number): Promise<LlamaCppGenerationStats>;
  /** Free the context and the model (the shared llama.cpp instance stays). Later calls reject. */
  dispose(): Promise<void>;
}

/** Options of {@link openLlamaCpp}. */
export interface OpenLlamaCppOptions {
  /** CPU threads for evaluation (default 1: deterministic, and cheap on a shared machine). */
  readonly threads?: number;
  /** KV-cache size in tokens (default: the model's training context, at most 2048). */
  readonly contextSize?: number;
  /**
   * Default true: float32 KV cache and no flash attention, so the logits match a float32
   * reference to ~1e-6 (llama.cpp's defaults, F16 KV cache and flash attention, agree only to
   * ~1e-4 on stories260K). Pass false to time llama.cpp as users run it.
   */
  readonly precise?: boolean;
  /**
   * GGUF LoRA adapters applied by the context (llama.cpp's `--lora-scaled FILE SCALE`; scale
   * defaults to 1, as `--lora FILE`). Each adds scale · (alpha / r) · B A x to its products.
   */
  readonly lora?: readonly { readonly path: string; readonly scale?: number }[];
}

type NodeLlamaCpp = typeof import('node-llama-cpp');

let shared: Promise<{ lib: NodeLlamaCpp; llama: Llama }> | undefined;
/** Recent llama.cpp error lines, quoted in load errors (llama.cpp logs its reason and then just fails). */
const recentErrors: string[] = [];

/** One llama.cpp instance per process, CPU only, never downloading or building anything. */
function sharedLlama(): Promise<{ lib: NodeLlamaCpp; llama: Llama }> {
  shared ??= (async () => {
    const lib = await import('node-llama-cpp');
    const llama = await lib.getLlama({
      gpu: false,
      build: 'never',
      usePrebuiltBinaries: true,
      skipDownload: true,
      progressLogs: false,
      logLevel: lib.LlamaLogLevel.warn,
      logger: (level, message) => {
        if (level !== lib.LlamaLogLevel.error && level !== lib.LlamaLogLevel.fatal) return;
        recentErrors.push(message.trim());
        if (recentErrors.length > 4) recentErrors.shift();
      },
    });
    return { lib, llama };
  })();
  shared.catch(() => {
    shared = undefined;
  });
  return shared;
}

function checkIds(fn: string, arg: string, ids: readonly number[], vocabSize: number, allowEmpty: boolean): void {
  if (!Array.isArray(ids)) throw new TypeError(`${fn}: ${arg} must be an array of token ids`);
  if (!allowEmpty && ids.length === 0) throw new RangeError(`${fn}: ${arg} must not be empty`);
  for (const id of ids) {
    if (!Number.isInteger(id)) throw new TypeError(`${fn}: ${arg} must hold integer token ids, got ${String(id)}`);
    if (id < 0 || id >= vocabSize) throw new RangeError(`${fn}: ${arg} holds id ${id} outside the vocabulary [0, ${vocabSize})`);
  }
}

function checkCount(fn: string, arg: string, n: number, min: number): void {
  if (!Number.isInteger(n)) throw new TypeError(`${fn}: ${arg} must be an integer, got ${String(n)}`);
  if (n < min) throw new RangeError(`${fn}: ${arg} must be at least ${min}, got ${n}`);
}

/**
 * Load a GGUF file with llama.cpp (CPU). Rejects with ModelFormatError when the file is
 * missing, unreadable or not a model llama.cpp can load (e.g. truncated).
 */
export async function openLlamaCpp(path: string, opts: OpenLlamaCppOptions = {}): Promise<LlamaCppModel> {
  if (typeof path !== 'string' || path === '') throw new TypeError('openLlamaCpp: path must be a non-empty string');
  const threads = opts.threads ?? 1;
  checkCount('openLlamaCpp', 'opts.threads', threads, 1);
  if (opts.contextSize !== undefined) checkCount('openLlamaCpp', 'opts.contextSize', opts.contextSize, 1);
  for (const l of opts.lora ?? []) {
    if (typeof l?.path !== 'string' || l.path === '') throw new TypeError('openLlamaCpp: opts.lora[].path must be a non-empty string');
    if (l.scale !== undefined && !Number.isFinite(l.scale)) throw new RangeError(`openLlamaCpp: opts.lora[].scale must be a finite number, got ${l.scale}`);
  }
  try {
    const st = await stat(path);
    if (!st.isFile()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
  } catch (e) {
    throw new ModelFormatError(`cannot read GGUF model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const { llama } = await sharedLlama();
  let model: LlamaModel;
  recentErrors.length = 0;
  try {
    model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  } catch (e) {
    const why = recentErrors.find((l) => l.includes('error loading model')) ?? recentErrors[0] ?? (e as Error).message;
    throw new ModelFormatError(`llama.cpp cannot load GGUF model ${path}: ${why}`);
  }
  let context: LlamaContext;
  try {
    const precise = opts.precise ?? true;
    context = await model.createContext({
      contextSize: opts.contextSize ?? Math.min(model.trainContextSize, 2048),
      threads,
      sequences: 1,
      // node-llama-cpp labels the KV-type options experimental; F32 is llama.cpp's `--cache-type-k f32`
      ...(precise ? { flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' } : {}),
      ...(opts.lora && opts.lora.length > 0 ? { lora: { adapters: opts.lora.map((l) => ({ filePath: l.path, scale: l.scale ?? 1 })) } } : {}),
    });
  } catch (e) {
    await model.dispose();
    if (opts.lora && opts.lora.length > 0) {
      const why = recentErrors.find((l) => /lora|adapter/i.test(l)) ?? recentErrors[0] ?? (e as Error).message;
      throw new ModelFormatError(`llama.cpp cannot apply LoRA adapter ${opts.lora.map((l) => l.path).join(', ')}: ${why}`);
    }
    throw e;
  }
  return new LlamaCppModelImpl(model, context, context.getSequence(), threads);
}

class LlamaCppModelImpl implements LlamaCppModel {
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly addBos: boolean;
  readonly vocabSize: number;
  readonly contextSize: number;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly seq: LlamaContextSequence,
    private readonly threads: number,
  ) {
    this.bosId = model.tokens.bos ?? undefined;
    this.eosId = model.tokens.eos ?? undefined;
    this.addBos = model.tokens.shouldPrependBosToken;
    let n = 0;
    for (const _ of model.iterateAllTokens()) n++;
    this.vocabSize = n;
    this.contextSize = context.contextSize;
  }

  tokenize(text: string, opts: { special: boolean; bos: boolean }): number[] {
    this.alive('tokenize');
    if (typeof text !== 'string') throw new TypeError('LlamaCppModel.tokenize: text must be a string');
    if (typeof opts?.special !== 'boolean' || typeof opts.bos !== 'boolean') throw new TypeError('LlamaCppModel.tokenize: opts must be { special: boolean; bos: boolean }');
    const ids = this.model.tokenize(text, opts.special).map(Number);
    return opts.bos && this.bosId !== undefined ? [this.bosId, ...ids] : ids;
  }

  detokenize(ids: readonly number[]): string {
    this.alive('detokenize');
    checkIds('LlamaCppModel.detokenize', 'ids', ids, this.vocabSize, true);
    return this.model.detokenize(ids as readonly Token[]);
  }

  greedy(promptIds: readonly number[], n: number, opts: { stopAtEos?: boolean } = {}): Promise<number[]> {
    return this.exclusive('greedy', promptIds, n, 0, async () => (await this.run(promptIds, n, opts.stopAtEos === true)).ids);
  }

  nextTokenProbs(promptIds: readonly number[]): Promise<Float32Array> {
    return this.exclusive('nextTokenProbs', promptIds, 0, 0, async () => {
      const last = promptIds.length - 1;
      // temperature 0 = llama.cpp's greedy sampler alone, which leaves the logits untouched;
      // the addon then returns the softmax over every candidate (the full vocabulary).
      const input = promptIds.map((id, i) =>
        i === last ? ([id, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as const) : id,
      ) as Parameters<LlamaContextSequence['controlledEvaluate']>[0];
      const out = await this.seq.controlledEvaluate(input);
      const probs = out[last]?.next.probabilities;
      if (!probs) throw new Error('LlamaCppModel.nextTokenProbs: llama.cpp returned no probabilities');
      if (probs.size !== this.vocabSize) throw new Error(`LlamaCppModel.nextTokenProbs: llama.cpp returned ${probs.size} probabilities, expected ${this.vocabSize}`);
      const p = new Float32Array(this.vocabSize);
      for (const [id, v] of probs) p[Number(id)] = v;
      return p;
    });
  }

  generationStats(promptIds: readonly number[], n: number): Promise<LlamaCppGenerationStats> {
    return this.exclusive('generationStats', promptIds, n, 2, async () => {
      const r = await this.run(promptIds, n, false);
      const decodeMs = r.endMs - r.firstMs;
      return {
        promptTokens: promptIds.length,
        generatedTokens: r.ids.length,
        prefillMs: r.firstMs - r.startMs,
        decodeMs,
        tokensPerSecond: ((r.ids.length - 1) * 1000) / decodeMs,
        threads: this.context.currentThreads || this.threads,
      };
    });
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => undefined);
    await this.context.dispose();
    await this.model.dispose();
  }

  /** Greedy generation from an empty cache; the caller holds the queue. */
  private async run(promptIds: readonly number[], n: number, stopAtEos: boolean): Promise<{ ids: number[]; startMs: number; firstMs: number; endMs: number }> {
    const ids: number[] = [];
    const startMs = performance.now();
    let firstMs = startMs;
    if (n > 0) {
      const gen = this.seq.evaluate([...promptIds] as Token[], { temperature: 0, yieldEogToken: true });
      for await (const t of gen) {
        const id = Number(t);
        if (stopAtEos && id === this.eosId) break;
        ids.push(id);
        if (ids.length === 1) firstMs = performance.now();
        if (ids.length >= n) break;
      }
    }
    return { ids, startMs, firstMs, endMs: performance.now() };
  }

  /** Validate, then run `work` alone on a freshly cleared sequence. */
  private exclusive<T>(fn: string, promptIds: readonly number[], n: number, minN: number, work: () => Promise<T>): Promise<T> {
    const name = `LlamaCppModel.${fn}`;
    try {
      this.alive(fn);
      checkIds(name, 'promptIds', promptIds, this.vocabSize, false);
      checkCount(name, 'n', n, minN);
      if (promptIds.length + n > this.contextSize) {
        throw new RangeError(`${name}: promptIds (${promptIds.length}) + n (${n}) exceed the context size ${this.contextSize}`);
      }
    } catch (e) {
      return Promise.reject(e);
    }
    const next = this.queue.then(async () => {
      if (this.disposed) throw new Error(`${name}: the model was disposed`);
      await this.seq.clearHistory();
      return work();
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private alive(fn: string): void {
    if (this.disposed) throw new Error(`LlamaCppModel.${fn}: the model was disposed`);
  }
}
