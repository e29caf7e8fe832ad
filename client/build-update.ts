/**
 * The device-side update pipeline, in one place, as pure functions over flat arrays (no gRPC, no
 * training): the change training made (local − global flat adapter) → the program's layout (a
 * smaller trained rank zero-padded; FFA-LoRA keeps only the B blocks) → clip to the round's C →
 * the round's device noise → quantize (q8/q4) → serialise, and then seal to the program key.
 * Under secure aggregation the pipeline stops before quantizing: the clipped, noised vector is
 * what the SecAgg stages mask. Privacy randomness is injected; a device passes crypto-strength
 * generators (client/device.ts), never ones derived from a public seed.
 */
import { packTrainable, padRankFlat, trainableRanges } from '../model/adapter-flat.js';
import type { LlamaConfig } from '../model/config.js';
import type { LoraConfig } from '../model/lora-config.js';
import { seal, type BoxKeyPair } from '../privacy/box.js';
import { clipToNorm, l2Norm } from '../privacy/clip.js';
import { stochasticQuantize } from '../privacy/compress.js';
import { addGaussianNoise } from '../privacy/noise.js';
import { encodeUpdate, isUpdateEncoding, UPDATE_QUANT_BLOCK, type UpdateEncoding } from '../proto/update-codec.js';
import { cryptoRng, type Rng } from '../random/rng.js';

/** How a device's flat adapter maps onto the flat update the program takes. */
export interface UpdateLayout {
  /** [offset, length] ranges of the program's flat vector that travel (FFA-LoRA: the B blocks). */
  readonly ranges: readonly [number, number][];
  /** Values an update holds: the ranges' total. */
  readonly length: number;
  /** Values of the program's whole flat adapter. */
  readonly total: number;
  /** Set when the device trained a smaller rank: its flat vectors are in that rank's layout. */
  readonly lowRank?: { readonly baseConfig: LlamaConfig; readonly programLora: LoraConfig; readonly rank: number };
}

/** The layout of a program's updates, for a device that trained rank `trainedRank` (default: the program's). */
export function updateLayout(baseConfig: LlamaConfig, programLora: LoraConfig, trainedRank = programLora.rank): UpdateLayout {
  const { ranges, length, total } = trainableRanges(baseConfig, programLora);
  if (!Number.isInteger(trainedRank) || trainedRank < 1 || trainedRank > programLora.rank) throw new RangeError(`updateLayout: trainedRank must be an integer in [1, ${programLora.rank}], got ${trainedRank}`);
  return { ranges, length, total, lowRank: trainedRank < programLora.rank ? { baseConfig, programLora, rank: trainedRank } : undefined };
}

/** What the round asks of the update. */
export interface UpdateWork {
  /** Clip bound C on the update's L2 norm; 0 for none. */
  readonly clipNorm: number;
  /** Standard deviation of the Gaussian noise the device adds per value; 0 for none. */
  readonly deviceNoiseStd: number;
  readonly encoding: UpdateEncoding;
}

/** Privacy randomness: crypto-strength on a device; only a test injects seeded generators. */
export interface PrivacyRngs {
  /** Device DP noise. */
  readonly noise: Rng;
  /** Stochastic rounding of q8/q4 quantization. */
  readonly rounding: Rng;
}

/**
 * A device's privacy randomness: crypto-strength, the one generator for noise and rounding —
 * never derived from the device's seed (round ids are public, so seeded noise could be
 * recomputed and subtracted). `injected`: a test's explicit generator, used as given.
 */
export function devicePrivacyRngs(injected?: Rng): PrivacyRngs {
  const rng = injected ?? cryptoRng();
  return { noise: rng, rounding: rng };
}

/** Everything the pipeline needs. */
export interface UpdateInput {
  /** The device's flat adapter after training (in its trained rank's layout). */
  readonly local: Float32Array;
  /** The same adapter as received, before training. */
  readonly global: Float32Array;
  readonly layout: UpdateLayout;
  readonly work: UpdateWork;
  /** The local training behind the update: optimizer steps taken and examples per step. */
  readonly trained: { readonly steps: number; readonly batchSize: number };
  readonly rngs: PrivacyRngs;
}

/** The update as a clipped, noised vector, before quantization. */
export interface PrivateUpdate {
  /** Clipped and noised, in the program's update layout. */
  readonly values: Float32Array;
  /** L2 norm before clipping and noise (adaptive clipping and the logs want it). */
  readonly norm: number;
  /** True if clipping scaled it down. */
  readonly clipped: boolean;
}

/** What the pipeline hands to the upload. */
export type BuiltUpdate = {
  /** L2 norm before clipping and noise. */
  readonly norm: number;
  readonly clipped: boolean;
  /** Examples the update was trained on (what FedAvg weighs it by). */
  readonly numExamples: number;
} & (
  | {
      readonly encoding: 'f32' | 'q8' | 'q4';
      /** The serialised update, ready for {@link sealUpdate}. */
      readonly plaintext: Uint8Array;
    }
  | {
      readonly encoding: 'masked';
      /** The clipped, noised vector the secure-aggregation stages mask. */
      readonly values: Float32Array;
    }
);

/** Delta → program layout: local − global, zero-padded to the program's rank, packed to the travelling ranges. */
export function updateDelta(local: Float32Array, global: Float32Array, layout: UpdateLayout): Float32Array {
  if (!(local instanceof Float32Array) || !(global instanceof Float32Array)) throw new TypeError('updateDelta: local and global must be Float32Arrays');
  if (local.length !== global.length) throw new RangeError(`updateDelta: local has ${local.length} values, global ${global.length}`);
  const own = Float32Array.from(local, (v, i) => v - global[i]);
  const lr = layout.lowRank;
  const full = lr ? padRankFlat(lr.baseConfig, lr.programLora, lr.rank, own) : own;
  if (full.length !== layout.total) throw new RangeError(`updateDelta: the adapters have ${own.length} values, the layout's program adapter ${layout.total}`);
  return layout.length === layout.total ? full : packTrainable(full, layout.ranges);
}

/** Delta → pack → clip → noise: the update as the device may let it go, before quantization. */
export function privateUpdate(input: UpdateInput): PrivateUpdate {
  const { clipNorm, deviceNoiseStd } = checkWork(input.work);
  const delta = updateDelta(input.local, input.global, input.layout);
  const norm = l2Norm(delta);
  const c = clipNorm > 0 ? clipToNorm(delta, clipNorm) : { update: delta, clipped: false };
  const values = deviceNoiseStd > 0 ? Float32Array.from(addGaussianNoise(c.update, deviceNoiseStd, input.rngs.noise)) : c.update;
  return { values, norm, clipped: c.clipped };
}

/**
 * Quantize → serialise a private update in the round's encoding ("masked": left as the vector
 * the SecAgg stages mask). Quantization is unbiased stochastic rounding from `rngs.rounding`.
 */
export function encodePrivateUpdate(input: Pick<UpdateInput, 'work' | 'trained' | 'rngs'>, update: PrivateUpdate): BuiltUpdate {
  const { encoding } = checkWork(input.work);
  const { steps, batchSize } = input.trained;
  if (!Number.isInteger(steps) || steps < 0) throw new RangeError(`encodePrivateUpdate: trained.steps must be an integer ≥ 0, got ${steps}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`encodePrivateUpdate: trained.batchSize must be a positive integer, got ${batchSize}`);
  const meta = { norm: update.norm, clipped: update.clipped, numExamples: Math.max(1, steps * batchSize) };
  if (encoding === 'masked') return { ...meta, encoding, values: update.values };
  if (encoding === 'f32') return { ...meta, encoding, plaintext: encodeUpdate(update.values) };
  const q = stochasticQuantize(update.values, encoding === 'q8' ? 8 : 4, input.rngs.rounding, UPDATE_QUANT_BLOCK);
  return { ...meta, encoding, plaintext: encodeUpdate(q) };
}

/** The whole pipeline: delta → pack → clip → noise → quantize → serialise. */
export function buildUpdate(input: UpdateInput): BuiltUpdate {
  return encodePrivateUpdate(input, privateUpdate(input));
}

/** The seal step: plaintext sealed by the device's box key to the program's key (only the coordinator opens it). */
export function sealUpdate(plaintext: Uint8Array, programKey: Uint8Array, deviceBox: BoxKeyPair): Uint8Array {
  return seal(plaintext, programKey, deviceBox);
}

function checkWork(work: UpdateWork): UpdateWork {
  if (typeof work !== 'object' || work === null) throw new TypeError('buildUpdate: work must be an object');
  if (!(work.clipNorm >= 0) || !Number.isFinite(work.clipNorm)) throw new RangeError(`buildUpdate: work.clipNorm must be a finite number ≥ 0, got ${work.clipNorm}`);
  if (!(work.deviceNoiseStd >= 0) || !Number.isFinite(work.deviceNoiseStd)) throw new RangeError(`buildUpdate: work.deviceNoiseStd must be a finite number ≥ 0, got ${work.deviceNoiseStd}`);
  if (!isUpdateEncoding(work.encoding)) throw new RangeError(`buildUpdate: work.encoding must be one of f32, q8, q4, masked, got "${String(work.encoding)}"`);
  return work;
}
