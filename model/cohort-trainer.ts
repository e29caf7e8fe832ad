/**
 * Several devices' local training as one tensor program. The K members' batches are stacked
 * along the batch ([K·B·T] tokens), so every frozen-base product, attention and norm runs once
 * for all of them; each member's LoRA A/B is one slice of a stacked variable ([K, in, r],
 * [K, r, out]) applied by a batched product to that member's rows only. The loss is the sum of
 * the members' own losses, so the gradient of a member's slice is exactly its own gradient
 * (its rows see nothing of the others'). Clipping, FedProx and AdamW state are per member.
 *
 * Each member runs what {@link LocalTrainer} would run with the same arguments: the same
 * resolved options, step count, batch sampling and dropout from its own seed, the same loss,
 * clip and update. Members must agree on everything but their data, seed, adapter values, step
 * count, time budget and clip norm ({@link cohortKey}); gradient checkpointing is not supported. A member
 * that stops early (its steps, its budget, a non-finite gradient) keeps its values while the
 * others go on (its rows still ride along in the stacked batch, unscored).
 */
import * as tf from '@tensorflow/tfjs';
import { Subject, type Observable } from 'rxjs';
import type { FrozenBase } from './frozen-base.js';
import { headLoss } from './head-loss.js';
import type { LoraAdapter } from './lora.js';
import { batchMatMul, variableFrom } from './ops/matmul.js';
import { resolveTraining, type TrainSetup } from './train-setup.js';
import type { TrainOptions, TrainProgress, TrainResult } from './trainer.js';
import { dropoutMask, forwardHidden } from './transformer.js';
import { batchAt, randomBatch, type MaskedTokens, type WindowBatch } from './windows.js';
import type { MatrixName } from './weights.js';

/** One device's share of a cohort: LocalTrainer's arguments. */
export interface CohortMember {
  /** Trained in place (its values are written back when the run ends). */
  readonly adapter: LoraAdapter;
  readonly data: Int32Array | MaskedTokens;
  readonly options: TrainOptions;
}

/** How a member's run ended: its result, or the error LocalTrainer would have thrown. */
export type CohortOutcome = { readonly ok: true; readonly result: TrainResult } | { readonly ok: false; readonly error: Error };

/**
 * What members must share to train together: the base (identity and quantization), the LoRA
 * shape and every optimizer setting but the step count, time budget and clip norm. Undefined when the run
 * cannot join a cohort (it needs gradient checkpointing).
 */
export function cohortKey(base: FrozenBase, adapter: LoraAdapter, setup: TrainSetup): string | undefined {
  if (setup.o.checkpoint) return undefined;
  const { rank, alpha, targets, dropout, freezeA } = adapter.config;
  const { steps: _s, timeBudgetMs: _t, clipNorm: _c, ...shared } = setup.o;
  return JSON.stringify([base.sha256, base.quant, rank, alpha, targets, dropout, freezeA, shared]);
}

type Status = 'active' | 'done' | 'budget' | 'failed';

/** Trains K adapters together. Subscribe to `progress[k]` before `run()`. */
export class CohortTrainer {
  /** Per member: a progress event after each of its steps; completes (or errors) when it stops. */
  readonly progress: readonly Observable<TrainProgress>[];
  private readonly events: Subject<TrainProgress>[];
  private readonly setups: TrainSetup[];
  private ran = false;

  constructor(
    private readonly base: FrozenBase,
    private readonly members: readonly CohortMember[],
  ) {
    if (!Array.isArray(members) || members.length === 0) throw new RangeError('CohortTrainer: members must be a non-empty array');
    this.setups = members.map((m, k) => resolveTraining(`CohortTrainer (member ${k})`, base, m?.adapter, m?.data, m?.options));
    const key0 = cohortKey(base, members[0].adapter, this.setups[0]);
    if (key0 === undefined) throw new RangeError('CohortTrainer: gradient checkpointing is not supported; train this run with LocalTrainer');
    this.setups.forEach((s, k) => {
      if (cohortKey(base, members[k].adapter, s) !== key0) throw new RangeError(`CohortTrainer: member ${k} differs from member 0 in LoRA shape or optimizer settings (only data, seed, adapter values, steps, time budget and clip norm may differ)`);
    });
    if (new Set(members.map((m) => m.adapter)).size !== members.length) throw new RangeError('CohortTrainer: an adapter appears twice among the members');
    this.events = members.map(() => new Subject<TrainProgress>());
    this.progress = this.events.map((e) => e.asObservable());
  }

  /** Run every member to its end; one outcome per member, in order. Yields between steps. */
  async run(): Promise<CohortOutcome[]> {
    if (this.ran) throw new Error('CohortTrainer: run() was already called');
    this.ran = true;
    const K = this.members.length;
    const { o } = this.setups[0];
    const { batchSize: B, seqLen: T } = o;
    const BT = B * T;
    const lora = this.members[0].adapter.config;
    const pairs = this.members.map((m) => m.adapter.list());
    const index = new Map(pairs[0].map((p, j) => [`${p.layer}.${p.name}`, j]));
    const stackA = pairs[0].map((_, j) => variableFrom(tf.stack(pairs.map((ps) => ps[j].aT)) as tf.Tensor3D, !lora.freezeA));
    const stackB = pairs[0].map((_, j) => variableFrom(tf.stack(pairs.map((ps) => ps[j].bT)) as tf.Tensor3D, true));
    const vars: tf.Variable[] = pairs[0].flatMap((_, j) => (lora.freezeA ? [stackB[j]] : [stackA[j], stackB[j]]));
    const m1 = vars.map((v) => variableFrom(tf.zerosLike(v), false));
    const m2 = vars.map((v) => variableFrom(tf.zerosLike(v), false));
    const anchors = o.proximalMu > 0 ? vars.map((v) => tf.keep(v.clone())) : undefined;
    const status: Status[] = this.members.map(() => 'active');
    const errors: (Error | undefined)[] = this.members.map(() => undefined);
    const steps = this.members.map(() => 0);
    const first = this.members.map(() => NaN);
    const last = this.members.map(() => NaN);
    const lastBatch: (WindowBatch | undefined)[] = this.members.map(() => undefined);
    const t0 = performance.now();
    let fatal: unknown;
    try {
      for (let step = 0; ; step++) {
        this.setups.forEach((s, k) => {
          if (status[k] !== 'active') return;
          if (step >= s.totalSteps) status[k] = 'done';
          else if (s.o.timeBudgetMs !== undefined && performance.now() - t0 >= s.o.timeBudgetMs) status[k] = 'budget';
        });
        const live = status.map((s) => s === 'active');
        if (!live.includes(true)) break;
        // each live member samples its batch from its own rng, as LocalTrainer does; the others repeat a batch, unscored
        const batches = this.setups.map((s, k) => {
          if (live[k]) return (lastBatch[k] = randomBatch(s.tokens, B, T, s.rng, s.startId, s.lossMask));
          return lastBatch[k] ?? batchAt(s.tokens, new Array<number>(B).fill(0), T, s.startId, s.lossMask);
        });
        const inputs = new Int32Array(K * BT);
        batches.forEach((b, k) => inputs.set(b.inputs, k * BT));
        const { norms, losses } = this.step(step, inputs, batches, live, stackA, stackB, vars, m1, m2, anchors, index);
        const elapsedMs = performance.now() - t0;
        for (let k = 0; k < K; k++) {
          if (!live[k]) continue;
          const loss = losses[k];
          if (!Number.isFinite(norms[k])) {
            status[k] = 'failed';
            errors[k] = new Error(`LocalTrainer: the gradient norm became ${norms[k]}; the adapter was left unchanged — lower lr`);
            continue;
          }
          if (!Number.isFinite(loss)) {
            status[k] = 'failed';
            errors[k] = new Error(`LocalTrainer: loss became ${loss} at step ${step + 1}; lower lr`);
            continue;
          }
          steps[k] = step + 1;
          if (step === 0) first[k] = loss;
          last[k] = loss;
          const tokens = steps[k] * BT;
          this.events[k].next({ step: steps[k], totalSteps: this.setups[k].totalSteps, loss, gradNorm: norms[k], tokensPerSecond: tokens / (elapsedMs / 1000), elapsedMs });
        }
        await new Promise((r) => setImmediate(r));
      }
    } catch (e) {
      fatal = e;
    } finally {
      // write every member's values back to its own adapter, then free the stacked state
      tf.tidy(() => {
        pairs[0].forEach((_, j) => {
          const as = lora.freezeA ? undefined : tf.unstack(stackA[j]);
          const bs = tf.unstack(stackB[j]);
          pairs.forEach((ps, k) => {
            if (as) ps[j].aT.assign(as[k] as tf.Tensor2D);
            ps[j].bT.assign(bs[k] as tf.Tensor2D);
          });
        });
      });
      tf.dispose([...stackA, ...stackB, ...m1, ...m2, ...(anchors ?? [])]);
    }
    const elapsedMs = performance.now() - t0;
    return this.members.map((_, k): CohortOutcome => {
      const error = fatal !== undefined ? (fatal instanceof Error ? fatal : new Error(String(fatal))) : errors[k];
      if (error) {
        if (this.events[k].observed) this.events[k].error(error);
        return { ok: false, error };
      }
      this.events[k].complete();
      const tokens = steps[k] * BT;
      return { ok: true, result: { steps: steps[k], tokens, firstLoss: first[k], lastLoss: last[k], elapsedMs, tokensPerSecond: tokens / (elapsedMs / 1000), stoppedByBudget: status[k] === 'budget' } };
    });
  }

  /** One step of every live member: forward, per-member losses, gradients, norms, clip, AdamW. */
  private step(
    step: number,
    inputs: Int32Array,
    batches: readonly WindowBatch[],
    live: readonly boolean[],
    stackA: readonly tf.Variable[],
    stackB: readonly tf.Variable[],
    vars: readonly tf.Variable[],
    m1: readonly tf.Variable[],
    m2: readonly tf.Variable[],
    anchors: readonly tf.Tensor[] | undefined,
    index: Map<string, number>,
  ): { norms: Float32Array; losses: Float32Array } {
    const K = this.members.length;
    const { o } = this.setups[0];
    const BT = o.batchSize * o.seqLen;
    const { dropout } = this.members[0].adapter.config;
    const scale = this.members[0].adapter.scale;
    // the members' adapters applied to their own rows: [K, B·T, in] × [K, in, r] × [K, r, out]
    const loraTerm = (x: tf.Tensor2D, layer: number, name: MatrixName): tf.Tensor2D | undefined => {
      const j = index.get(`${layer}.${name}`);
      if (j === undefined) return undefined;
      const [N, inp] = x.shape;
      let u = x;
      if (dropout > 0) {
        // each live member draws its mask from its own rng in the order its LocalTrainer would
        const mask = new Float32Array(N * inp).fill(1);
        live.forEach((l, k) => {
          if (l) mask.set(dropoutMask(this.setups[k].rng, BT * inp, dropout), k * BT * inp);
        });
        u = tf.mul(x, tf.tensor2d(mask, [N, inp]));
      }
      const y = batchMatMul(batchMatMul(u.reshape([K, BT, inp]) as tf.Tensor3D, stackA[j] as tf.Tensor3D), stackB[j] as tf.Tensor3D);
      return tf.mul(y.reshape([N, y.shape[2]]), scale) as tf.Tensor2D;
    };
    return tf.tidy(() => {
      let lossVec: tf.Tensor1D | undefined;
      const { grads } = tf.variableGrads(() => {
        const { hidden } = forwardHidden(this.base, inputs, K * o.batchSize, { loraTerm });
        const parts = K === 1 ? [hidden] : (tf.split(hidden, K, 0) as tf.Tensor2D[]);
        const perMember = parts.map((h, k) => (live[k] ? headLoss(this.base, h, batches[k].targets, batches[k].weights) : tf.scalar(NaN)));
        lossVec = tf.keep(tf.stack(perMember) as tf.Tensor1D);
        const scored = perMember.filter((_, k) => live[k]);
        return (scored.length === 1 ? scored[0] : tf.addN(scored)) as tf.Scalar;
      }, vars as tf.Variable[]);
      let g = vars.map((v) => grads[v.name]);
      if (anchors) g = g.map((gi, i) => tf.add(gi, tf.mul(tf.sub(vars[i], anchors[i]), o.proximalMu)));
      const norms = tf.sqrt(tf.addN(g.map((gi) => tf.sum(tf.square(gi), [1, 2]))));
      const synced = tf.concat([norms, lossVec as tf.Tensor1D]).dataSync() as Float32Array;
      (lossVec as tf.Tensor1D).dispose();
      const normValues = synced.slice(0, K);
      const losses = synced.slice(K);
      // who updates, and each one's clip factor (LocalTrainer scales only above the clip norm)
      const update = live.map((l, k) => l && Number.isFinite(normValues[k]));
      const factor = normValues.map((n, k) => {
        const clip = this.setups[k].o.clipNorm;
        return !update[k] ? 0 : clip > 0 && n > clip ? clip / n : 1;
      });
      const perMember = (values: number[]): tf.Tensor3D => tf.tensor3d(values, [K, 1, 1]);
      if (update.includes(false)) {
        const keep = tf.tensor3d(update.map((u) => (u ? 1 : 0)), [K, 1, 1], 'bool');
        const f = perMember(Array.from(factor));
        g = g.map((gi) => tf.where(tf.broadcastTo(keep, gi.shape), tf.mul(gi, tf.broadcastTo(f, gi.shape)), tf.zerosLike(gi)));
      } else if (factor.some((f) => f !== 1)) {
        const f = perMember(Array.from(factor));
        g = g.map((gi) => tf.mul(gi, f));
      }
      // AdamW as model/adamw.ts, with the step size (and decay) zero for members that do not update
      const t = step + 1;
      const c1 = 1 - Math.pow(o.beta1, t);
      const c2 = 1 - Math.pow(o.beta2, t);
      const all = !update.includes(false);
      const lr = all ? o.lr : perMember(update.map((u) => (u ? o.lr : 0)));
      const decay = o.weightDecay ? (all ? 1 - o.lr * o.weightDecay : perMember(update.map((u) => (u ? 1 - o.lr * o.weightDecay : 1)))) : undefined;
      vars.forEach((p, i) => {
        const m = tf.add(tf.mul(m1[i], o.beta1), tf.mul(g[i], 1 - o.beta1));
        const v = tf.add(tf.mul(m2[i], o.beta2), tf.mul(tf.square(g[i]), 1 - o.beta2));
        m1[i].assign(m);
        m2[i].assign(v);
        const upd = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), o.eps));
        const decayed = decay !== undefined ? tf.mul(p, decay) : p;
        p.assign(tf.sub(decayed, tf.mul(upd, lr)));
      });
      return { norms: normValues, losses };
    });
  }
}
