/**
 * LoRA adapters over the frozen base: for each target matrix W [out, in] of each layer,
 * W x + (alpha / r) · B A x with A [r, in] and B [out, r]. B starts at zero, so a fresh adapter
 * leaves the model exactly at the base. A is drawn from a seed (the same seed gives the same A:
 * FFA-LoRA devices share it). Held as variables in the transposed layout Aᵀ [in, r], Bᵀ [r, out]
 * so every product is a plain matMul.
 */
import * as tf from '@tensorflow/tfjs';
import type { LlamaConfig } from './config.js';
import { loraConfig, type LoraConfig } from './lora-config.js';
import { initialA, transpose, type LoraTensor } from './lora-init.js';
import { variableFrom } from './ops/matmul.js';
import { matrixShape, type MatrixName } from './weights.js';

/** One adapted matrix. */
export interface LoraPair {
  readonly layer: number;
  readonly name: MatrixName;
  /** [in, r] */
  readonly aT: tf.Variable<tf.Rank.R2>;
  /** [r, out] */
  readonly bT: tf.Variable<tf.Rank.R2>;
}

/** A LoRA adapter bound to one base model. Create after `initBackend()`; call dispose() when done. */
export class LoraAdapter {
  readonly config: LoraConfig;
  readonly baseConfig: LlamaConfig;
  /** SHA-256 of the base this adapter was made for. */
  readonly baseSha256: string;
  private readonly pairs = new Map<string, LoraPair>();
  private disposed = false;

  private constructor(baseConfig: LlamaConfig, baseSha256: string, config: LoraConfig) {
    this.baseConfig = baseConfig;
    this.baseSha256 = baseSha256;
    this.config = config;
  }

  /** A fresh adapter: A uniform in ±1/√in drawn from `config.seed`, B = 0. */
  static create(baseConfig: LlamaConfig, baseSha256: string, options: Partial<LoraConfig> = {}): LoraAdapter {
    const cfg = loraConfig(options, 'LoraAdapter.create');
    const ad = new LoraAdapter(baseConfig, baseSha256, cfg);
    for (let layer = 0; layer < baseConfig.nLayers; layer++) {
      for (const name of cfg.targets) {
        const [out, inp] = matrixShape(baseConfig, name);
        const a = initialA(cfg, layer, name, inp);
        ad.add(layer, name, transpose(a, cfg.rank, inp), new Float32Array(cfg.rank * out));
      }
    }
    return ad;
  }

  /** Rebuild from tensors in the standard layout (as {@link toTensors} returns them). */
  static fromTensors(baseConfig: LlamaConfig, baseSha256: string, config: LoraConfig, tensors: readonly LoraTensor[]): LoraAdapter {
    const cfg = loraConfig(config, 'LoraAdapter.fromTensors');
    const byName = new Map(tensors.map((t) => [t.name, t]));
    // check everything before creating any variable, so a rejected input leaks nothing
    const pending: [number, MatrixName, Float32Array, Float32Array][] = [];
    for (let layer = 0; layer < baseConfig.nLayers; layer++) {
      for (const name of cfg.targets) {
        const [out, inp] = matrixShape(baseConfig, name);
        const a = expectTensor(byName, `layers.${layer}.${name}.lora_A`, [cfg.rank, inp]);
        const b = expectTensor(byName, `layers.${layer}.${name}.lora_B`, [out, cfg.rank]);
        pending.push([layer, name, transpose(a, cfg.rank, inp), transpose(b, out, cfg.rank)]);
      }
    }
    if (byName.size !== pending.length * 2) throw new RangeError(`LoraAdapter.fromTensors: ${byName.size - pending.length * 2} tensors do not belong to this LoRA config`);
    const ad = new LoraAdapter(baseConfig, baseSha256, cfg);
    for (const [layer, name, aT, bT] of pending) ad.add(layer, name, aT, bT);
    return ad;
  }

  private add(layer: number, name: MatrixName, aT: Float32Array, bT: Float32Array): void {
    const [out, inp] = matrixShape(this.baseConfig, name);
    const r = this.config.rank;
    const prefix = `lora.${layer}.${name}`;
    this.pairs.set(`${layer}.${name}`, {
      layer,
      name,
      aT: variableFrom(tf.tensor2d(aT, [inp, r]), !this.config.freezeA, `${prefix}.A.${uid()}`),
      bT: variableFrom(tf.tensor2d(bT, [r, out]), true, `${prefix}.B.${uid()}`),
    });
  }

  /** (alpha / rank) */
  get scale(): number {
    return this.config.alpha / this.config.rank;
  }

  /** The adapter on a layer's matrix, if that matrix is a target. */
  get(layer: number, name: MatrixName): LoraPair | undefined {
    this.check();
    return this.pairs.get(`${layer}.${name}`);
  }

  /** All pairs, layer-major in target order. */
  list(): LoraPair[] {
    this.check();
    return [...this.pairs.values()];
  }

  /** Variables an optimizer should update (B only under freezeA). */
  trainableVariables(): tf.Variable[] {
    return this.list().flatMap((p) => (this.config.freezeA ? [p.bT] : [p.aT, p.bT]));
  }

  /** Number of adapter parameters (A and B). */
  get parameterCount(): number {
    return this.list().reduce((s, p) => s + p.aT.size + p.bT.size, 0);
  }

  /** Copy out every tensor in the standard layout: A [r, in], B [out, r]. */
  toTensors(): LoraTensor[] {
    const r = this.config.rank;
    return this.list().flatMap((p) => {
      const [inp] = p.aT.shape;
      const [, out] = p.bT.shape;
      return [
        { name: `layers.${p.layer}.${p.name}.lora_A`, shape: [r, inp] as [number, number], data: transpose(p.aT.dataSync() as Float32Array, inp, r) },
        { name: `layers.${p.layer}.${p.name}.lora_B`, shape: [out, r] as [number, number], data: transpose(p.bT.dataSync() as Float32Array, r, out) },
      ];
    });
  }

  /**
   * Every adapter value in one array, in a fixed order (pairs layer-major in target order, Aᵀ
   * then Bᵀ, each row-major): the vector federated updates and aggregation work on.
   */
  toFlat(): Float32Array {
    const out = new Float32Array(this.parameterCount);
    let off = 0;
    for (const p of this.list()) {
      for (const v of [p.aT, p.bT]) {
        out.set(v.dataSync() as Float32Array, off);
        off += v.size;
      }
    }
    return out;
  }

  /** Overwrite every value from an array laid out as {@link toFlat} returns it. */
  setFromFlat(flat: Float32Array): void {
    if (!(flat instanceof Float32Array)) throw new TypeError('LoraAdapter.setFromFlat: flat must be a Float32Array');
    if (flat.length !== this.parameterCount) throw new RangeError(`LoraAdapter.setFromFlat: got ${flat.length} values, the adapter has ${this.parameterCount}`);
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i])) throw new RangeError(`LoraAdapter.setFromFlat: non-finite value at ${i}`);
    }
    let off = 0;
    for (const p of this.list()) {
      for (const v of [p.aT, p.bT]) {
        const t = tf.tensor(flat.subarray(off, off + v.size), v.shape);
        v.assign(t as tf.Tensor2D);
        t.dispose();
        off += v.size;
      }
    }
  }

  /** An independent copy (new variables). */
  clone(): LoraAdapter {
    return LoraAdapter.fromTensors(this.baseConfig, this.baseSha256, this.config, this.toTensors());
  }

  /** Release the variables. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.pairs.values()) {
      p.aT.dispose();
      p.bT.dispose();
    }
  }

  private check(): void {
    if (this.disposed) throw new Error('LoraAdapter: used after dispose()');
  }
}

let counter = 0;
function uid(): number {
  return ++counter;
}

function expectTensor(byName: Map<string, LoraTensor>, name: string, shape: [number, number]): Float32Array {
  const t = byName.get(name);
  if (!t) throw new RangeError(`LoraAdapter.fromTensors: missing tensor ${name}`);
  if (t.shape[0] !== shape[0] || t.shape[1] !== shape[1] || t.data.length !== shape[0] * shape[1]) {
    throw new RangeError(`LoraAdapter.fromTensors: ${name} has shape [${t.shape}] but the base and LoRA config need [${shape}]`);
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i])) throw new RangeError(`LoraAdapter.fromTensors: ${name} holds a non-finite value at ${i}`);
  }
  return t.data;
}
