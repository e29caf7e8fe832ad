/**
 * The plain-array side of LoRA, without TensorFlow.js: one adapter tensor as arrays, the seeded
 * initial A every device and the coordinator draw alike, and the transpose between the standard
 * (PEFT) layout and the transposed one adapters hold. LoraAdapter (lora.ts) and the flat layout
 * (adapter-flat.ts) both build on these.
 */
import { deriveSeed, seededRng } from '../random/rng.js';
import type { LoraConfig } from './lora-config.js';
import type { MatrixName } from './weights.js';

/** Plain-array form of one adapter tensor, in the standard (PEFT) layout. */
export interface LoraTensor {
  /** e.g. "layers.0.wq.lora_A" */
  readonly name: string;
  /** lora_A: [r, in]; lora_B: [out, r] */
  readonly shape: [number, number];
  readonly data: Float32Array;
}

/** A [r, in] of one target: uniform in ±1/√in from a seed derived from (seed, layer, name). */
export function initialA(cfg: LoraConfig, layer: number, name: MatrixName, inDim: number): Float32Array {
  const rng = seededRng(deriveSeed(cfg.seed, `lora.A.${layer}.${name}`));
  const bound = 1 / Math.sqrt(inDim);
  const a = new Float32Array(cfg.rank * inDim);
  for (let i = 0; i < a.length; i++) a[i] = (2 * rng.nextFloat() - 1) * bound;
  return a;
}

/** Transpose a row-major [rows, cols] array. */
export function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j];
  return out;
}
