/** AdamW (Loshchilov & Hutter) over tfjs variables, with decoupled weight decay. */
import * as tf from '@tensorflow/tfjs';
import { adamwStepFused } from './ops/adamw-kernel.js';
import { variableFrom } from './ops/matmul.js';

/** AdamW hyper-parameters. */
export interface AdamWOptions {
  /** Learning rate. */
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Decoupled weight decay (multiplied by lr). */
  readonly weightDecay: number;
}

/** One AdamW state per variable list. Call dispose() when done. */
export class AdamW {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  private t = 0;

  constructor(
    private readonly vars: readonly tf.Variable[],
    private readonly opts: AdamWOptions,
  ) {
    const { lr, beta1, beta2, eps, weightDecay } = opts;
    if (!(lr > 0) || !Number.isFinite(lr)) throw new RangeError(`AdamW: lr must be a positive number, got ${lr}`);
    for (const [k, b] of [['beta1', beta1], ['beta2', beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new RangeError(`AdamW: ${k} must be in [0, 1), got ${b}`);
    }
    if (!(eps > 0)) throw new RangeError(`AdamW: eps must be positive, got ${eps}`);
    if (!(weightDecay >= 0) || !Number.isFinite(weightDecay)) throw new RangeError(`AdamW: weightDecay must be ≥ 0, got ${weightDecay}`);
    this.m = vars.map((x) => variableFrom(tf.zerosLike(x), false));
    this.v = vars.map((x) => variableFrom(tf.zerosLike(x), false));
  }

  /** Apply one update from gradients keyed by variable name. */
  step(grads: Record<string, tf.Tensor>): void {
    this.t++;
    const { lr, beta1, beta2, eps, weightDecay } = this.opts;
    const c1 = 1 - Math.pow(beta1, this.t);
    const c2 = 1 - Math.pow(beta2, this.t);
    tf.tidy(() => {
      this.vars.forEach((p, i) => {
        const g = grads[p.name];
        if (!g) return;
        // one kernel per variable where the backend has it (ops/adamw-kernel.ts)
        const fused = adamwStepFused(p, this.m[i], this.v[i], g, { lr, beta1, beta2, eps, weightDecay, c1, c2 });
        if (fused) {
          this.m[i].assign(fused[1]);
          this.v[i].assign(fused[2]);
          p.assign(fused[0]);
          return;
        }
        const m = tf.add(tf.mul(this.m[i], beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(this.v[i], beta2), tf.mul(tf.square(g), 1 - beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        const decayed = weightDecay ? tf.mul(p, 1 - lr * weightDecay) : p;
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
  }

  /** Release optimizer state. */
  dispose(): void {
    [...this.m, ...this.v].forEach((x) => x.dispose());
  }
}
