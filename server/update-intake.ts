/**
 * The coordinator-side update pipeline, as pure functions (no gRPC, no round state):
 *
 *   open (authenticated decryption) → decode → finite → norm within the round's bound (with the
 *   encoding's slack) → clip to the bound → unpack to the flat adapter layout
 *
 * Every refusal is a CoordinatorError ('invalid-argument') with a sentence for the device's
 * operator. The bound is always finite: the round's clip norm C when devices are told one (an
 * update past it, beyond rounding and quantization slack, is refused), else the program's
 * maxUpdateNorm (devices are not told it, so a longer update is scaled down to it, not refused).
 * Under local or distributed DP a device adds its own noise after clipping, so the bound allows
 * C plus a high-probability bound on that noise's norm (privacy/noise noiseNormBound), and such an
 * update is never clipped here (clipping would distort the noise the accountant counts on).
 */
import type { DeviceTraining } from '../model/device-training.js';
import { trainableRanges, unpackTrainable } from '../model/adapter-flat.js';
import type { LlamaConfig } from '../model/config.js';
import type { LoraConfig } from '../model/lora-config.js';
import { openWithSharedKey } from '../privacy/box.js';
import { openSealedInPlace } from '../privacy/secretbox-open.js';
import { clipToNorm, withinClipBound } from '../privacy/clip.js';
import { noiseNormBound } from '../privacy/noise.js';
import { decodeUpdate } from '../proto/update-codec.js';
import { refuse } from './errors.js';

/** Where an update's values go in the flat adapter: all of it, or only the B blocks under FFA-LoRA. */
export interface UpdateLayout {
  /** Values in an update as devices send it (packed). */
  readonly updateLength: number;
  /** Values in the flat adapter. */
  readonly flatLength: number;
  /** [offset, length] runs of the flat adapter an update fills, in order. */
  readonly ranges: readonly (readonly [number, number])[];
}

/** The update layout of a program's adapter. */
export function updateLayout(baseConfig: LlamaConfig, lora: LoraConfig): UpdateLayout {
  const t = trainableRanges(baseConfig, lora);
  return Object.freeze({ updateLength: t.length, flatLength: t.total, ranges: Object.freeze(t.ranges.map((r) => Object.freeze([r[0], r[1]] as const))) });
}

/** A packed update in flat adapter layout (zeros outside the trained runs); the same array when nothing is packed. */
export function expandUpdate(layout: UpdateLayout, packed: Float32Array): Float32Array {
  if (packed.length !== layout.updateLength) throw new RangeError(`expandUpdate: packed has ${packed.length} values, the layout takes ${layout.updateLength}`);
  return layout.updateLength === layout.flatLength ? packed : unpackTrainable(packed, layout.ranges as [number, number][], layout.flatLength);
}

/** The default maxUpdateNorm for updates of `updateLength` values: √n, an RMS of 1 per value. */
export function defaultMaxUpdateNorm(updateLength: number): number {
  if (!Number.isInteger(updateLength) || updateLength < 1) throw new RangeError(`defaultMaxUpdateNorm: updateLength must be a positive integer, got ${updateLength}`);
  return Math.sqrt(updateLength);
}

/** The L2 bound on a round's updates, and whether devices were told it (then exceeding it is refused). */
export interface UpdateBound {
  readonly norm: number;
  readonly told: boolean;
  /** Extra L2 allowed for the noise the device adds itself after clipping (0 without device noise). */
  readonly noiseAllowance: number;
}

/**
 * A round's bound: its clip norm C if > 0 (told to devices), else the program's maxUpdateNorm
 * (0 = the default for the layout); `deviceNoiseStd` is the std of the noise each device adds
 * itself this round (local / distributed DP; 0 otherwise).
 */
export function updateBound(clipNorm: number, maxUpdateNorm: number, layout: UpdateLayout, deviceNoiseStd = 0): UpdateBound {
  const noiseAllowance = noiseNormBound(deviceNoiseStd, layout.updateLength);
  if (clipNorm > 0) return { norm: clipNorm, told: true, noiseAllowance };
  return { norm: (maxUpdateNorm > 0 ? maxUpdateNorm : defaultMaxUpdateNorm(layout.updateLength)) + noiseAllowance, told: false, noiseAllowance };
}

/**
 * Decrypt a sealed update with the device ↔ program shared key; refuse it if it does not open.
 * `inPlace`: `sealed` is the caller's to give up (the upload's own buffer, 4-byte aligned): it is
 * decrypted where it lies and the plaintext returned is a view of it (privacy/secretbox-open.ts).
 */
export function openSealedUpdate(sealed: Uint8Array, sharedKey: Uint8Array, inPlace = false): Uint8Array {
  const plain = inPlace && sealed.byteOffset % 4 === 0 ? openSealedInPlace(sealed, sharedKey) : openWithSharedKey(sealed, sharedKey);
  if (!plain) refuse('invalid-argument', 'the update could not be decrypted: it is not sealed by this device to the program key, or was altered');
  return plain;
}

/** An update that passed intake, in flat adapter layout. */
export interface AcceptedUpdate {
  readonly update: Float32Array;
  /** L2 norm as received (before any clipping here). */
  readonly norm: number;
  /** True if the coordinator scaled it down to the bound. */
  readonly clipped: boolean;
}

/** True on a little-endian host (the wire's byte order for f32). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Decode → finite → bound → clip → unpack a plaintext float update (encodings f32, q8, q4).
 * `givesUpPlain`: the caller will not touch `plain` again, so an f32 update may be a view of it.
 */
export function intakeUpdate(encoding: string, plain: Uint8Array, layout: UpdateLayout, bound: UpdateBound, givesUpPlain = false): AcceptedUpdate {
  // f32 on a little-endian host, 4-byte aligned, and the caller gives the bytes up: view them, no copy
  const view = givesUpPlain && encoding === 'f32' && LITTLE_ENDIAN && plain.byteOffset % 4 === 0 && plain.length === 4 * layout.updateLength;
  const decoded = view ? { update: new Float32Array(plain.buffer, plain.byteOffset, layout.updateLength), slack: 0 } : decodeUpdate(encoding, plain, layout.updateLength);
  const bounded = boundUpdate(decoded.update, bound, decoded.slack);
  return { ...bounded, update: expandUpdate(layout, bounded.update) };
}

/** Finite values and an L2 norm within the bound (see the file comment); the update clipped to it. */
export function boundUpdate(update: Float32Array, bound: UpdateBound, slack = 0): AcceptedUpdate {
  // one pass: Σ v² (as l2Norm sums it) is finite exactly when every value is (a float32 squared cannot overflow a float64)
  let ss = 0;
  for (let i = 0; i < update.length; i++) ss += update[i] * update[i];
  if (!Number.isFinite(ss)) {
    for (let i = 0; i < update.length; i++) if (!Number.isFinite(update[i])) refuse('invalid-argument', `the update holds a non-finite value (${update[i]}) at index ${i}`);
  }
  const norm = Math.sqrt(ss);
  if (!Number.isFinite(norm)) refuse('invalid-argument', 'the update\'s L2 norm overflows');
  // a quantized update may sit past C by its rounding (slack, from its own scales); bring it back to C
  const noisy = bound.noiseAllowance > 0;
  if (bound.told && !withinClipBound(norm, bound.norm, slack + bound.noiseAllowance)) {
    refuse('invalid-argument', `the update's L2 norm ${norm.toPrecision(6)} exceeds the round's clip norm ${bound.norm}${noisy ? ` plus ${bound.noiseAllowance.toPrecision(6)} for the device's own noise` : ''}`);
  }
  // a noised update keeps its noise up to C plus the noise allowance; past that (only through the
  // quantization slack, whose scales the sender chose) it is clipped like any other
  const cap = bound.told && noisy ? bound.norm + bound.noiseAllowance : bound.norm;
  if (norm <= cap) return { update, norm, clipped: false };
  return { update: clipToNorm(update, cap).update, norm, clipped: !bound.told };
}

/** Refuse a num_examples outside [1, steps × batch]. */
export function checkNumExamples(numExamples: number, training: DeviceTraining): void {
  const maxExamples = (training.steps ?? 1) * (training.batchSize ?? 1);
  if (!Number.isSafeInteger(numExamples) || numExamples < 1 || numExamples > maxExamples) refuse('invalid-argument', `num_examples must be an integer in [1, ${maxExamples}] (steps × batch), got ${numExamples}`);
}
