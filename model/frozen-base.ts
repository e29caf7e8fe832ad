/**
 * The frozen base model held in memory for forward passes: float32 tensors (`none`) or
 * block-quantized arrays in JS (`int8` = Q8_0, `int4` = Q4_0) dequantized into float32 tensors
 * inside each forward pass and again in backprop (so no dequantized copy outlives a step).
 * RMSNorm weights stay float32. Nothing here is trainable.
 */
import * as tf from '@tensorflow/tfjs';
import { parameterCount, type LlamaConfig } from './config.js';
import type { LoadedBase } from './checkpoint.js';
import { frozenMatMul, frozenMatMulNT, transposedProductsDirect } from './ops/matmul.js';
import { nativeDequantized } from './ops/native-dequant.js';
import { dequantizeInto, quantize, quantizedBytes, QUANT_MODES, type QuantizedArray, type QuantMode } from './quant.js';
import { MATRIX_NAMES, matrixShape, type MatrixName } from './weights.js';

/** The optional per-layer vectors: q/k/v biases (Qwen2) and per-head q/k norms (Qwen3). */
export const OPTIONAL_VECTORS = ['bq', 'bk', 'bv', 'qNorm', 'kNorm'] as const;
/** One of {@link OPTIONAL_VECTORS}. */
export type OptionalVectorName = (typeof OPTIONAL_VECTORS)[number];

/** A matrix slot: a block matrix of a layer, or the output head. */
export type MatrixRef = { layer: number; name: MatrixName } | 'classifier';

interface Held {
  readonly shape: [number, number]; // [out, in]
  readonly wT?: tf.Tensor2D; // none: persistent [in, out]
  readonly q?: QuantizedArray;
}

/** Vocabulary rows per product in {@link FrozenBase.logits}. */
export const HEAD_LOGITS_CHUNK = 8192;

/** Key of a matrix slot: "layer.name" (e.g. "3.w2") or "classifier". */
export function matrixKey(ref: MatrixRef): string {
  return ref === 'classifier' ? ref : `${ref.layer}.${ref.name}`;
}

/** Construction options of {@link FrozenBase}. */
export interface FrozenBaseOptions {
  /**
   * Quantization of the output head and the token embedding. Default: `int8` when the block
   * matrices are `int4` (as llama.cpp keeps the output layer above 4 bits), else the same mode.
   */
  readonly headQuant?: QuantMode;
  /**
   * Matrices already quantized (by GPTQ, or read from a file), keyed "layer.name", "classifier"
   * or "embedding" (an unshared embedding). Their float arrays in `loaded` are then not read.
   */
  readonly quantized?: ReadonlyMap<string, QuantizedArray>;
}

/** The head quantization used with block quantization `quant` when none is given. */
export function defaultHeadQuant(quant: QuantMode): QuantMode {
  // native: the head keeps the file's own type too
  return quant === 'int4' ? 'int8' : quant;
}

/** Memory held by the frozen base. */
export interface BaseMemory {
  /** Bytes of all base weights as held (quantized matrices, fp32 norms, embedding). */
  readonly bytes: number;
  /** Parameters of the model (shared head counted once). */
  readonly params: number;
  readonly bytesPerParam: number;
}

/** The frozen, optionally quantized, base model. Create after `initBackend()`. */
export class FrozenBase {
  readonly config: LlamaConfig;
  /** SHA-256 of the base file: adapters record it and are refused by other bases. */
  readonly sha256: string;
  readonly quant: QuantMode;
  private readonly mats = new Map<string, Held>();
  private readonly norms: { att: tf.Tensor1D[]; ffn: tf.Tensor1D[]; final: tf.Tensor1D };
  private readonly embF32?: Float32Array;
  private readonly embQ?: QuantizedArray;
  private readonly vectors = new Map<string, tf.Tensor1D>();
  private disposed = false;

  /**
   * Build from loaded float32 weights. `quant` (default `none`) applies to the block matrices;
   * the output head (and the embedding it shares) follows `options.headQuant`.
   */
  constructor(loaded: LoadedBase, quant: QuantMode = 'none', options: FrozenBaseOptions = {}) {
    if (!QUANT_MODES.includes(quant)) throw new RangeError(`FrozenBase: quant must be one of ${QUANT_MODES.join(', ')}, got "${quant}"`);
    const headQuant = options.headQuant ?? defaultHeadQuant(quant);
    if (!QUANT_MODES.includes(headQuant)) throw new RangeError(`FrozenBase: headQuant must be one of ${QUANT_MODES.join(', ')}, got "${headQuant}"`);
    const w = loaded.weights;
    this.config = w.config;
    this.sha256 = loaded.sha256;
    this.quant = quant;
    // check given quantized matrices before allocating any tensor, so a bad one leaks nothing
    const expected = new Map<string, number>([['classifier', this.config.vocabSize * this.config.dim], ['embedding', this.config.vocabSize * this.config.dim]]);
    for (let l = 0; l < this.config.nLayers; l++) {
      for (const name of MATRIX_NAMES) expected.set(matrixKey({ layer: l, name }), matrixShape(this.config, name).reduce((a, b) => a * b));
    }
    for (const [key, q] of options.quantized ?? []) {
      if (!expected.has(key)) throw new RangeError(`FrozenBase: options.quantized has an unknown matrix "${key}"`);
      if (q.length !== expected.get(key)) throw new RangeError(`FrozenBase: quantized ${key} has ${q.length} values, expected ${expected.get(key)}`);
    }
    const hold = (key: string, data: Float32Array, shape: [number, number], mode: QuantMode): void => {
      const given = options.quantized?.get(key);
      if (given) {
        this.mats.set(key, { shape, q: given });
      } else if (mode === 'none' || mode === 'native') {
        const wT = tf.tidy(() => tf.transpose(tf.tensor2d(data, shape)));
        this.mats.set(key, { shape, wT: tf.keep(wT) as tf.Tensor2D });
      } else {
        this.mats.set(key, { shape, q: quantize(data, mode) });
      }
    };
    w.layers.forEach((lw, l) => {
      for (const name of MATRIX_NAMES) hold(`${l}.${name}`, lw[name], matrixShape(this.config, name), quant);
    });
    hold('classifier', w.classifier, [this.config.vocabSize, this.config.dim], headQuant);
    if (w.classifier === w.tokenEmbedding) this.embQ = this.mats.get('classifier')?.q; // else gather from the fp32 head
    else if (options.quantized?.get('embedding')) this.embQ = options.quantized.get('embedding');
    else if (headQuant === 'none' || headQuant === 'native') this.embF32 = w.tokenEmbedding;
    else this.embQ = quantize(w.tokenEmbedding, headQuant);
    this.norms = {
      att: w.layers.map((lw) => tf.keep(tf.tensor1d(lw.rmsAtt))),
      ffn: w.layers.map((lw) => tf.keep(tf.tensor1d(lw.rmsFfn))),
      final: tf.keep(tf.tensor1d(w.rmsFinal)),
    };
    w.layers.forEach((lw, l) => {
      for (const name of OPTIONAL_VECTORS) {
        const v = lw[name];
        if (v) this.vectors.set(`${l}.${name}`, tf.keep(tf.tensor1d(v)));
      }
    });
  }

  /** A layer's bias (bq, bk, bv) or per-head norm (qNorm, kNorm), or undefined if the base has none. */
  vector(layer: number, name: OptionalVectorName): tf.Tensor1D | undefined {
    if (this.disposed) throw new Error('FrozenBase: used after dispose()');
    return this.vectors.get(`${layer}.${name}`);
  }

  private held(ref: MatrixRef): Held {
    if (this.disposed) throw new Error('FrozenBase: used after dispose()');
    const key = matrixKey(ref);
    const h = this.mats.get(key);
    if (!h) throw new RangeError(`FrozenBase: no matrix ${key}`);
    return h;
  }

  private dequantized(h: Held): tf.Tensor2D {
    const q = h.q as QuantizedArray;
    // straight into the wasm heap when the native addon can (ops/native-dequant.ts)
    const t = nativeDequantized(q, h.shape);
    if (t) return t as tf.Tensor2D;
    return tf.tensor2d(dequantizeInto(q, new Float32Array(q.length)), h.shape);
  }

  /** The weight as [out, in]. A new tensor: dispose it (or call inside tf.tidy). */
  weight(ref: MatrixRef): tf.Tensor2D {
    const h = this.held(ref);
    return h.wT ? tf.transpose(h.wT) : this.dequantized(h);
  }

  /** The weight as [in, out]; for `none` this is the held tensor itself, so never dispose it yourself. */
  weightT(ref: MatrixRef): tf.Tensor2D {
    const h = this.held(ref);
    return h.wT ?? tf.transpose(this.dequantized(h));
  }

  /**
   * Rows [start, end) of the output head, transposed: [dim, end − start]. Dequantizes only those
   * rows, so a large vocabulary's head is never materialised whole in float32. A new tensor
   * (a slice for a float32 head): call inside tf.tidy.
   */
  headRowsT(start: number, end: number): tf.Tensor2D {
    const h = this.held('classifier');
    const [V, dim] = h.shape;
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end && end <= V)) throw new RangeError(`FrozenBase.headRowsT: rows [${start}, ${end}) outside [0, ${V})`);
    if (h.wT) return tf.slice(h.wT, [0, start], [dim, end - start]);
    const rows = dequantizeInto(h.q as QuantizedArray, new Float32Array((end - start) * dim), start * dim, end * dim, 0);
    return tf.transpose(tf.tensor2d(rows, [end - start, dim]));
  }

  /**
   * Logits [n, vocab] of hidden states [n, dim]. A vocabulary above {@link HEAD_LOGITS_CHUNK}
   * rows is taken in chunks of rows (see headRowsT), so the head is never materialised whole in
   * float32 (for Qwen's 151,936 × 896 head, 545 MB and its transpose at every generated token);
   * smaller ones are one product. Differentiable in `hidden`. Call inside tf.tidy.
   */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    const V = this.config.vocabSize;
    if (V <= HEAD_LOGITS_CHUNK) return this.linear(hidden, 'classifier');
    const parts: tf.Tensor2D[] = [];
    for (let v = 0; v < V; v += HEAD_LOGITS_CHUNK) {
      const end = Math.min(V, v + HEAD_LOGITS_CHUNK);
      parts.push(frozenMatMul(hidden, () => this.headRowsT(v, end), () => tf.transpose(this.headRowsT(v, end))));
    }
    return tf.concat(parts, 1);
  }

  /** y = x Wᵀ for x [n, in]: differentiable in x only. Call inside tf.tidy. */
  linear(x: tf.Tensor2D, ref: MatrixRef): tf.Tensor2D {
    // a quantized weight read transposed by the native product: no transposed copy per use
    if (!this.held(ref).wT && transposedProductsDirect()) return frozenMatMulNT(x, () => this.weight(ref));
    return frozenMatMul(x, () => this.weightT(ref), () => this.weight(ref));
  }

  /** Token embeddings [n, dim] for token ids (never needs a gather gradient: the base is frozen). */
  embed(tokens: Int32Array): tf.Tensor2D {
    const { dim, vocabSize } = this.config;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new RangeError(`FrozenBase.embed: token id ${t} at ${i} is outside [0, ${vocabSize})`);
    }
    if (!this.embF32 && !this.embQ) {
      // fp32 shared head: gather columns of the held [dim, vocab] tensor, no second copy
      return tf.tidy(() => tf.transpose(tf.gather(this.held('classifier').wT as tf.Tensor2D, tf.tensor1d(tokens, 'int32'), 1)));
    }
    const out = new Float32Array(tokens.length * dim);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i];
      if (this.embF32) out.set(this.embF32.subarray(t * dim, (t + 1) * dim), i * dim);
      else dequantizeInto(this.embQ as QuantizedArray, out, t * dim, (t + 1) * dim, i * dim);
    }
    return tf.tensor2d(out, [tokens.length, dim]);
  }

  /** RMSNorm weights: before attention, before the FFN, or the final one. */
  norm(kind: 'att' | 'ffn', layer: number): tf.Tensor1D;
  norm(kind: 'final'): tf.Tensor1D;
  norm(kind: 'att' | 'ffn' | 'final', layer = 0): tf.Tensor1D {
    return kind === 'final' ? this.norms.final : this.norms[kind][layer];
  }

  /** Bytes held by the base weights, and per parameter. */
  memory(): BaseMemory {
    let bytes = 0;
    for (const h of this.mats.values()) bytes += h.q ? quantizedBytes(h.q) : h.shape[0] * h.shape[1] * 4;
    if (this.embF32) bytes += this.embF32.byteLength;
    else if (this.embQ && this.embQ !== this.mats.get('classifier')?.q) bytes += quantizedBytes(this.embQ);
    const c = this.config;
    bytes += (2 * c.nLayers + 1) * c.dim * 4;
    for (const v of this.vectors.values()) bytes += v.size * 4;
    const params = parameterCount(c);
    return { bytes, params, bytesPerParam: bytes / params };
  }

  /** Release the tensors held. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const h of this.mats.values()) h.wT?.dispose();
    [...this.norms.att, ...this.norms.ffn, this.norms.final, ...this.vectors.values()].forEach((t) => t.dispose());
  }
}
