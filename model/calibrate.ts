/**
 * Calibrated 4-bit quantization of a base: sequential GPTQ. Layer by layer, the inputs of
 * each block matrix are gathered (H = XᵀX) by running the model with every earlier layer
 * already quantized, then that layer's matrices are rounded with GPTQ; the output head last.
 * Keys are "layer.name" (e.g. "3.w2") and "classifier".
 */
import * as tf from '@tensorflow/tfjs';
import type { LoadedBase } from './checkpoint.js';
import { defaultHeadQuant, FrozenBase, matrixKey, type MatrixRef } from './frozen-base.js';
import { gptqQuantizeQ4 } from './gptq.js';
import { quantize, type QuantizedArray, type QuantMode } from './quant.js';
import { sampleSequences } from './generate.js';
import type { TokenRoles } from './text-tokenizer.js';
import { forward } from './transformer.js';
import { MATRIX_NAMES, matrixShape } from './weights.js';
import { consecutiveBatches } from './windows.js';

/** Options of {@link gptqQuantizeBase}. */
export interface GptqOptions {
  /** The token leading every calibration window (the tokenizer's `startId`). */
  readonly startId: number;
  /** Window length for calibration (default 128). */
  readonly context?: number;
  /** Dampening, as a fraction of H's mean diagonal (default 0.01). */
  readonly damp?: number;
  /** Head quantization (default int8, see FrozenBase); `int4` rounds it with GPTQ too. */
  readonly headQuant?: QuantMode;
  /** Values per Q4_0 block (default INT4_BLOCK). */
  readonly block?: number;
}

/** XᵀX of the inputs of the matrices `want` selects, over the calibration windows. */
function hessians(model: FrozenBase, tokens: Int32Array, context: number, startId: number, want: (ref: MatrixRef) => boolean): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  for (const b of consecutiveBatches(tokens, context, 8, startId)) {
    tf.tidy(() => {
      // wq/wk/wv (and w1/w3) see the same input tensor: compute its XᵀX once
      const byInput = new Map<tf.Tensor, Float32Array>();
      forward(model, b.inputs, b.batch, {
        onMatrixInput: (ref, x) => {
          if (!want(ref)) return;
          let xtx = byInput.get(x);
          if (!xtx) byInput.set(x, (xtx = tf.matMul(tf.transpose(x), x).dataSync() as Float32Array));
          const key = matrixKey(ref);
          let acc = out.get(key);
          if (!acc) out.set(key, (acc = new Float64Array(xtx.length)));
          for (let i = 0; i < xtx.length; i++) acc[i] += xtx[i];
        },
      });
    });
  }
  return out;
}

/**
 * Quantize the block matrices to Q4_0 with sequential GPTQ over `tokens` (calibration text,
 * encoded without BOS), each window led by `options.startId`. Returns the quantized matrices to
 * pass as FrozenBase's `quantized`.
 */
export function gptqQuantizeBase(loaded: LoadedBase, tokens: Int32Array, options: GptqOptions): Map<string, QuantizedArray> {
  const c = loaded.weights.config;
  const startId = options?.startId;
  if (startId === undefined || !Number.isInteger(startId) || startId < 0 || startId >= c.vocabSize) {
    throw new RangeError(`gptqQuantizeBase: options.startId must be a token id in [0, ${c.vocabSize}) (the tokenizer's startId), got ${startId}`);
  }
  const context = Math.min(options.context ?? 128, c.seqLen);
  const damp = options.damp ?? 0.01;
  if (tokens.length < 2) throw new RangeError('gptqQuantizeBase: need calibration tokens');
  if (!(damp > 0)) throw new RangeError(`gptqQuantizeBase: damp must be positive, got ${damp}`);
  const headQuant = options.headQuant ?? defaultHeadQuant('int4');
  const done = new Map<string, QuantizedArray>();
  const step = (want: (ref: MatrixRef) => boolean, quantizeOne: (key: string, h: Float64Array) => void): void => {
    const model = new FrozenBase(loaded, 'none', { headQuant: 'none', quantized: done });
    try {
      for (const [key, h] of hessians(model, tokens, context, startId, want)) quantizeOne(key, h);
    } finally {
      model.dispose();
    }
  };
  for (let l = 0; l < c.nLayers; l++) {
    step(
      (ref) => ref !== 'classifier' && ref.layer === l,
      (key, h) => {
        const name = MATRIX_NAMES.find((n) => key === `${l}.${n}`)!;
        const [rows, cols] = matrixShape(c, name);
        done.set(key, gptqQuantizeQ4(loaded.weights.layers[l][name], rows, cols, h, damp, options.block));
      },
    );
  }
  if (headQuant === 'int4') {
    step(
      (ref) => ref === 'classifier',
      (key, h) => done.set(key, gptqQuantizeQ4(loaded.weights.classifier, c.vocabSize, c.dim, h, damp, options.block)),
    );
  } else if (headQuant === 'int8') {
    done.set('classifier', quantize(loaded.weights.classifier, 'int8'));
  }
  return done;
}

/** Options of {@link createBase}. */
export interface CreateBaseOptions extends Omit<GptqOptions, 'startId'> {
  /**
   * The base's tokenizer: its `startId` leads calibration windows and self-sampled sequences,
   * its `isStop` ends them. Required for calibrated int4.
   */
  readonly tokenizer?: TokenRoles;
  /** Calibration tokens for int4; default: sequences sampled from the base itself (data-free). */
  readonly calibration?: Int32Array;
  /** Seed of the self-sampled calibration (default 0, so a base quantizes the same every time). */
  readonly seed?: number;
  /** int4 with nearest rounding instead of GPTQ (fast, lower quality). Default false. */
  readonly uncalibrated?: boolean;
}

/**
 * The frozen base at a quantization mode, the way fedtune quantizes: int8 is Q8_0; int4 is
 * 4-bit blocks rounded by sequential GPTQ on calibration text (by default 32 × 255 tokens
 * sampled from the float32 base, seed 0: no data needed, same result every time) with the head
 * at int8. Takes seconds for int4 on stories260K; `none` and `int8` are immediate.
 */
export function createBase(loaded: LoadedBase, quant: QuantMode, options: CreateBaseOptions = {}): FrozenBase {
  if (quant !== 'int4' || options.uncalibrated) return new FrozenBase(loaded, quant, { headQuant: options.headQuant });
  const tokenizer = options.tokenizer;
  if (!tokenizer) throw new TypeError('createBase: calibrated int4 needs options.tokenizer (its startId leads the calibration windows)');
  let calibration = options.calibration;
  if (!calibration) {
    const fp32 = new FrozenBase(loaded, 'none');
    try {
      calibration = sampleSequences(fp32, { tokenizer, count: 32, length: Math.min(255, loaded.weights.config.seqLen - 1), seed: options.seed ?? 0 });
    } finally {
      fp32.dispose();
    }
  }
  return new FrozenBase(loaded, 'int4', { headQuant: options.headQuant, quantized: gptqQuantizeBase(loaded, calibration, { ...options, startId: tokenizer.startId }) });
}
