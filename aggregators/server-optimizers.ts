/**
 * Server-side optimizers of adaptive federated optimization (Reddi et al. 2021). Each round the
 * pseudo-gradient Δ is the (weighted) mean of the devices' deltas (local − global); the global
 * adapter x moves by it:
 * - FedAvg:     x ← x + η Δ
 * - FedAvgM:    v ← β v + Δ;                              x ← x + η v
 * - FedAdagrad: m ← β₁ m + (1−β₁) Δ;  v ← v + Δ²;          x ← x + η m / (√v + τ)
 * - FedAdam:    m as above;           v ← β₂ v + (1−β₂) Δ²; x ← x + η m / (√v + τ)
 * - FedYogi:    m as above;           v ← v − (1−β₂) Δ² sign(v − Δ²); x ← x + η m / (√v + τ)
 * v starts at τ². Pure float math, state in float64.
 */

/** Which server optimizer. */
export type ServerOptimizerKind = 'fedavg' | 'fedavgm' | 'fedadagrad' | 'fedadam' | 'fedyogi';

/** Hyper-parameters; defaults follow Reddi et al. (η 1 for fedavg/fedavgm, 0.01 for adaptive). */
export interface ServerOptimizerOptions {
  readonly kind: ServerOptimizerKind;
  /** Server learning rate η. */
  readonly lr?: number;
  /** FedAvgM momentum β. Default 0.9. */
  readonly momentum?: number;
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.99. */
  readonly beta2?: number;
  /** Adaptivity τ. Default 1e-3. */
  readonly tau?: number;
}

/** Server optimizer state for one global vector. */
export class ServerOptimizer {
  readonly kind: ServerOptimizerKind;
  private readonly lr: number;
  private readonly momentum: number;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly tau: number;
  private m?: Float64Array;
  private v?: Float64Array;
  /** The state as the last {@link checkpoint} saw it. */
  private saved?: { readonly m?: Float64Array; readonly v?: Float64Array };

  constructor(options: ServerOptimizerOptions) {
    const kinds: ServerOptimizerKind[] = ['fedavg', 'fedavgm', 'fedadagrad', 'fedadam', 'fedyogi'];
    if (!kinds.includes(options.kind)) throw new RangeError(`ServerOptimizer: kind must be one of ${kinds.join(', ')}, got "${options.kind}"`);
    this.kind = options.kind;
    const adaptive = options.kind !== 'fedavg' && options.kind !== 'fedavgm';
    this.lr = options.lr ?? (adaptive ? 0.01 : 1);
    this.momentum = options.momentum ?? 0.9;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.99;
    this.tau = options.tau ?? 1e-3;
    if (!(this.lr > 0) || !Number.isFinite(this.lr)) throw new RangeError(`ServerOptimizer: lr must be positive, got ${this.lr}`);
    for (const [k, b] of [['momentum', this.momentum], ['beta1', this.beta1], ['beta2', this.beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new RangeError(`ServerOptimizer: ${k} must be in [0, 1), got ${b}`);
    }
    if (!(this.tau > 0)) throw new RangeError(`ServerOptimizer: tau must be positive, got ${this.tau}`);
  }

  /** Remember the moments as they are now, for {@link rollback}. */
  checkpoint(): void {
    this.saved = { m: this.m?.slice(), v: this.v?.slice() };
  }

  /** Restore the moments of the last {@link checkpoint} (a step whose result was not published must leave no trace). */
  rollback(): void {
    if (!this.saved) return;
    this.m = this.saved.m?.slice();
    this.v = this.saved.v?.slice();
  }

  /** The next global vector from the current one and this round's pseudo-gradient Δ. */
  step(global: Float32Array, delta: Float32Array): Float32Array {
    if (!(global instanceof Float32Array) || !(delta instanceof Float32Array)) throw new TypeError('ServerOptimizer.step: global and delta must be Float32Arrays');
    for (let i = 0; i < delta.length; i++) {
      if (!Number.isFinite(delta[i])) throw new RangeError(`ServerOptimizer.step: delta holds a non-finite value at ${i}; the state is unchanged`);
    }
    if (global.length !== delta.length) throw new RangeError(`ServerOptimizer.step: global has ${global.length} values but delta ${delta.length}`);
    const d = global.length;
    if (this.m && this.m.length !== d) throw new RangeError(`ServerOptimizer.step: the vector length changed from ${this.m.length} to ${d}`);
    const out = new Float32Array(d);
    if (this.kind === 'fedavg') {
      for (let i = 0; i < d; i++) out[i] = global[i] + this.lr * delta[i];
      return out;
    }
    const m = (this.m ??= new Float64Array(d));
    if (this.kind === 'fedavgm') {
      for (let i = 0; i < d; i++) {
        m[i] = this.momentum * m[i] + delta[i];
        out[i] = global[i] + this.lr * m[i];
      }
      return out;
    }
    const v = (this.v ??= new Float64Array(d).fill(this.tau * this.tau));
    for (let i = 0; i < d; i++) {
      const g = delta[i];
      const g2 = g * g;
      m[i] = this.beta1 * m[i] + (1 - this.beta1) * g;
      if (this.kind === 'fedadagrad') v[i] = v[i] + g2;
      else if (this.kind === 'fedadam') v[i] = this.beta2 * v[i] + (1 - this.beta2) * g2;
      else v[i] = v[i] - (1 - this.beta2) * g2 * Math.sign(v[i] - g2);
      out[i] = global[i] + (this.lr * m[i]) / (Math.sqrt(v[i]) + this.tau);
    }
    return out;
  }
}
