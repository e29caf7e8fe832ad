/**
 * Local LoRA training on one device's text: random windows led by the tokenizer's start token,
 * mean next-token loss (over the scored targets only when the tokens come with a loss mask, e.g. chat data),
 * AdamW on the adapter's variables only, global gradient-norm clipping, a step/epoch count
 * and an optional time budget. Progress is an rxjs Observable.
 */
import type { LlamaConfig } from './config.js';
import * as tf from '@tensorflow/tfjs';
import { Subject, type Observable } from 'rxjs';
import { AdamW } from './adamw.js';
import type { FrozenBase } from './frozen-base.js';
import type { LoraAdapter } from './lora.js';
import { cryptoRng, seededRng, type Rng } from '../random/rng.js';
import { headLoss } from './head-loss.js';
import { leanVariableGrads } from './ops/lean-grads.js';
import { forwardHidden } from './transformer.js';
import { checkLossMask, randomBatch, scoredWindowStarts, type MaskedTokens } from './windows.js';

/** Saved activations per step above which LocalTrainer checkpoints by default (512 MiB). */
export const CHECKPOINT_ABOVE_BYTES = 512 * 2 ** 20;

/**
 * A rough size of what backprop keeps for one step without checkpointing: per layer and token,
 * about a dozen vectors of the model width, four of the FFN width and three attention rows.
 */
export function activationBytes(c: LlamaConfig, batch: number, T: number): number {
  return 4 * c.nLayers * batch * T * (12 * c.dim + 4 * c.hiddenDim + 3 * c.nHeads * T);
}

/** Training options; every field but `startId` has a default. */
export interface TrainOptions {
  /** The token leading every window: the tokenizer's `startId` (BOS for llama2.c). */
  readonly startId: number;
  /** Optimizer steps. Default 50 (ignored when `epochs` is set). */
  readonly steps?: number;
  /** Passes over the text, each ⌈tokens / (batch·seqLen)⌉ steps. */
  readonly epochs?: number;
  /** Windows per step. Default 8. */
  readonly batchSize?: number;
  /** Tokens per window, the start token included. Default min(128, model context). */
  readonly seqLen?: number;
  /** Default 2e-3. */
  readonly lr?: number;
  /** Default 0. */
  readonly weightDecay?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  /** Global L2 clip of the gradient; 0 disables. Default 1. */
  readonly clipNorm?: number;
  /** Stop after this many milliseconds (checked between steps). */
  readonly timeBudgetMs?: number;
  /**
   * FedProx (Li et al. 2020): add (μ/2)·‖w − w₀‖² over the adapter's trainable values, w₀ being
   * their values when run() starts (the global adapter in a round). Default 0 (plain local training).
   */
  readonly proximalMu?: number;
  /**
   * Gradient checkpointing per layer (see ForwardOptions.checkpoint): activations of one layer
   * at a time instead of all, for about a third more compute. Default: on when a step's saved
   * activations would exceed {@link CHECKPOINT_ABOVE_BYTES} (e.g. Qwen2.5-0.5B at 256 tokens,
   * which otherwise overflows the 4 GiB wasm heap), off otherwise (stories260K, the demo).
   */
  readonly checkpoint?: boolean;
  /** Seed for batch sampling and dropout; without it, crypto randomness. */
  readonly seed?: number;
  readonly rng?: Rng;
}

/** One progress event. */
export interface TrainProgress {
  readonly step: number;
  readonly totalSteps: number;
  /** Mean training loss of this step's batch (nats/token). */
  readonly loss: number;
  /** Gradient norm before clipping. */
  readonly gradNorm: number;
  readonly tokensPerSecond: number;
  readonly elapsedMs: number;
}

/** What a finished run reports. */
export interface TrainResult {
  readonly steps: number;
  readonly tokens: number;
  readonly firstLoss: number;
  readonly lastLoss: number;
  readonly elapsedMs: number;
  readonly tokensPerSecond: number;
  /** True if the time budget ended the run early. */
  readonly stoppedByBudget: boolean;
}

function positive(where: string, name: string, v: number, integer: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new RangeError(`${where}: ${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  }
  return v;
}

/** Trains one adapter on one token stream. Subscribe to `progress$` before `run()`. */
export class LocalTrainer {
  private readonly events = new Subject<TrainProgress>();
  /** A progress event after every step; completes when the run ends. */
  readonly progress$: Observable<TrainProgress> = this.events.asObservable();
  private readonly o: Required<Omit<TrainOptions, 'epochs' | 'timeBudgetMs' | 'seed' | 'rng' | 'proximalMu' | 'startId' | 'checkpoint'>> & { timeBudgetMs?: number; proximalMu: number; checkpoint: boolean };
  private readonly startId: number;
  private readonly rng: Rng;
  private readonly totalSteps: number;
  private readonly tokens: Int32Array;
  private readonly lossMask?: Uint8Array;

  /**
   * `data` is a token stream, or a token stream with its loss mask ({@link MaskedTokens}, e.g.
   * from chatTrainingStream): then only windows holding a scored target are sampled and the loss
   * is the mean over scored targets.
   */
  constructor(
    private readonly base: FrozenBase,
    private readonly adapter: LoraAdapter,
    data: Int32Array | MaskedTokens,
    options: TrainOptions,
  ) {
    const w = 'LocalTrainer';
    const tokens = data instanceof Int32Array ? data : data?.tokens;
    if (!(tokens instanceof Int32Array)) throw new TypeError(`${w}: data must be an Int32Array or { tokens: Int32Array, lossMask: Uint8Array }`);
    this.tokens = tokens;
    if (!(data instanceof Int32Array)) {
      checkLossMask(w, tokens, data.lossMask);
      this.lossMask = data.lossMask;
    }
    if (options === null || typeof options !== 'object') throw new TypeError(`${w}: options must be an object with startId (the tokenizer's startId)`);
    if (!Number.isInteger(options.startId) || options.startId < 0 || options.startId >= base.config.vocabSize) {
      throw new RangeError(`${w}: startId must be a token id in [0, ${base.config.vocabSize}), got ${options.startId}`);
    }
    this.startId = options.startId;
    const seqLen = positive(w, 'seqLen', options.seqLen ?? Math.min(128, base.config.seqLen), true);
    if (seqLen > base.config.seqLen) throw new RangeError(`${w}: seqLen ${seqLen} exceeds the model's context of ${base.config.seqLen}`);
    const batchSize = positive(w, 'batchSize', options.batchSize ?? 8, true);
    if (tokens.length < seqLen) throw new RangeError(`${w}: the text has ${tokens.length} tokens, fewer than one window of ${seqLen}`);
    if (adapter.baseSha256 !== base.sha256) throw new RangeError(`${w}: the adapter was made for another base model`);
    if (this.lossMask && scoredWindowStarts(this.lossMask, seqLen).length === 0) throw new RangeError(`${w}: the loss mask scores no token`);
    this.o = {
      steps: positive(w, 'steps', options.steps ?? 50, true),
      batchSize,
      seqLen,
      lr: positive(w, 'lr', options.lr ?? 2e-3, false),
      weightDecay: options.weightDecay ?? 0,
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.999,
      eps: positive(w, 'eps', options.eps ?? 1e-8, false),
      clipNorm: options.clipNorm ?? 1,
      timeBudgetMs: options.timeBudgetMs === undefined ? undefined : positive(w, 'timeBudgetMs', options.timeBudgetMs, false),
      proximalMu: options.proximalMu ?? 0,
      checkpoint: options.checkpoint ?? activationBytes(base.config, options.batchSize ?? 8, options.seqLen ?? Math.min(128, base.config.seqLen)) > CHECKPOINT_ABOVE_BYTES,
    };
    if (!(this.o.proximalMu >= 0) || !Number.isFinite(this.o.proximalMu)) throw new RangeError(`${w}: proximalMu must be a finite number ≥ 0, got ${this.o.proximalMu}`);
    if (!(this.o.weightDecay >= 0)) throw new RangeError(`${w}: weightDecay must be ≥ 0, got ${this.o.weightDecay}`);
    if (!(this.o.clipNorm >= 0)) throw new RangeError(`${w}: clipNorm must be ≥ 0, got ${this.o.clipNorm}`);
    for (const k of ['beta1', 'beta2'] as const) {
      if (!(this.o[k] >= 0 && this.o[k] < 1)) throw new RangeError(`${w}: ${k} must be in [0, 1), got ${this.o[k]}`);
    }
    if (options.epochs === undefined) this.totalSteps = this.o.steps;
    else {
      const epochs = positive(w, 'epochs', options.epochs, false);
      this.totalSteps = Math.max(1, Math.ceil((epochs * tokens.length) / (batchSize * seqLen)));
    }
    this.rng = options.rng ?? (options.seed !== undefined ? seededRng(options.seed) : cryptoRng());
  }

  /** Run to the end (or the time budget) and report. Yields to the event loop between steps. */
  async run(): Promise<TrainResult> {
    const vars = this.adapter.trainableVariables();
    const opt = new AdamW(vars, this.o);
    // FedProx anchors: the starting values (kept outside tidy, disposed at the end)
    const anchors = this.o.proximalMu > 0 ? new Map(vars.map((v) => [v.name, tf.keep(v.clone())])) : undefined;
    const t0 = performance.now();
    let firstLoss = NaN;
    let lastLoss = NaN;
    let step = 0;
    let stoppedByBudget = false;
    try {
      for (; step < this.totalSteps; step++) {
        if (this.o.timeBudgetMs !== undefined && performance.now() - t0 >= this.o.timeBudgetMs) {
          stoppedByBudget = true;
          break;
        }
        const { loss, gradNorm } = this.step(vars, opt, anchors);
        if (!Number.isFinite(loss)) throw new Error(`LocalTrainer: loss became ${loss} at step ${step + 1}; lower lr`);
        if (step === 0) firstLoss = loss;
        lastLoss = loss;
        const elapsedMs = performance.now() - t0;
        const tokens = (step + 1) * this.o.batchSize * this.o.seqLen;
        this.events.next({ step: step + 1, totalSteps: this.totalSteps, loss, gradNorm, tokensPerSecond: tokens / (elapsedMs / 1000), elapsedMs });
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      if (this.events.observed) this.events.error(e);
      throw e;
    } finally {
      opt.dispose();
      for (const a of anchors?.values() ?? []) a.dispose();
    }
    this.events.complete();
    const elapsedMs = performance.now() - t0;
    const tokens = step * this.o.batchSize * this.o.seqLen;
    return { steps: step, tokens, firstLoss, lastLoss, elapsedMs, tokensPerSecond: tokens / (elapsedMs / 1000), stoppedByBudget };
  }

  private step(vars: tf.Variable[], opt: AdamW, anchors?: Map<string, tf.Tensor>): { loss: number; gradNorm: number } {
    const b = randomBatch(this.tokens, this.o.batchSize, this.o.seqLen, this.rng, this.startId, this.lossMask);
    return tf.tidy(() => {
      const { value, grads } = leanVariableGrads(
        () => headLoss(this.base, forwardHidden(this.base, b.inputs, b.batch, { adapter: this.adapter, dropoutRng: this.rng, checkpoint: this.o.checkpoint }).hidden, b.targets, b.weights),
        vars,
      );
      const names = Object.keys(grads);
      if (anchors) {
        // ∇ (μ/2)‖w − w₀‖² = μ (w − w₀), added to the data gradient (the reported loss stays the data loss)
        const byName = new Map(vars.map((v) => [v.name, v]));
        for (const n of names) grads[n] = tf.add(grads[n], tf.mul(tf.sub(byName.get(n) as tf.Variable, anchors.get(n) as tf.Tensor), this.o.proximalMu));
      }
      const norm = tf.sqrt(tf.addN(names.map((n) => tf.sum(tf.square(grads[n])))));
      const gradNorm = norm.dataSync()[0];
      if (!Number.isFinite(gradNorm)) throw new Error(`LocalTrainer: the gradient norm became ${gradNorm}; the adapter was left unchanged — lower lr`);
      let g = grads;
      if (this.o.clipNorm > 0 && gradNorm > this.o.clipNorm) {
        const f = this.o.clipNorm / gradNorm;
        g = Object.fromEntries(names.map((n) => [n, tf.mul(grads[n], f)]));
      }
      opt.step(g);
      return { loss: value.dataSync()[0], gradNorm };
    });
  }
}
