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
import type { Rng } from '../random/rng.js';
import { headLoss } from './head-loss.js';
import { leanVariableGrads } from './ops/lean-grads.js';
import { forwardHidden } from './transformer.js';
import { resolveTraining, type ResolvedTrainOptions } from './train-setup.js';
import { randomBatch, type MaskedTokens } from './windows.js';

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

/** What trains one device's adapter in a round: {@link LocalTrainer}, or anything of its shape. */
export interface DeviceTrainer {
  /** A progress event after every step; completes when the run ends. Subscribe before `run()`. */
  readonly progress$: Observable<TrainProgress>;
  /** Train to the end (or the time budget); the adapter holds the trained values when it resolves. */
  run(): Promise<TrainResult>;
}

/**
 * Makes the trainer of one device's round, with {@link LocalTrainer}'s arguments; it must check
 * them as LocalTrainer does (throwing at once) and train `adapter` in place.
 */
export type DeviceTrainerFactory = (base: FrozenBase, adapter: LoraAdapter, data: Int32Array | MaskedTokens, options: TrainOptions) => DeviceTrainer;

/** The default {@link DeviceTrainerFactory}: one {@link LocalTrainer} per device. */
export const localTrainerFactory: DeviceTrainerFactory = (base, adapter, data, options) => new LocalTrainer(base, adapter, data, options);

/** Trains one adapter on one token stream. Subscribe to `progress$` before `run()`. */
export class LocalTrainer implements DeviceTrainer {
  private readonly events = new Subject<TrainProgress>();
  /** A progress event after every step; completes when the run ends. */
  readonly progress$: Observable<TrainProgress> = this.events.asObservable();
  private readonly o: ResolvedTrainOptions;
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
    const s = resolveTraining('LocalTrainer', base, adapter, data, options);
    this.o = s.o;
    this.startId = s.startId;
    this.rng = s.rng;
    this.totalSteps = s.totalSteps;
    this.tokens = s.tokens;
    this.lossMask = s.lossMask;
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
