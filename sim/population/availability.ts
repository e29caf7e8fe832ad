/**
 * Availability of a simulated population and the per-round draw of who checks in.
 *
 * Each device has its own probability of being online in a round (uniform in mean ± spread/2,
 * one byte per device), and every device that starts a round's work drops out before uploading
 * with a common probability. {@link drawOnline} gives a round's online devices: every one of
 * them checks in, and the coordinator's sampling (server/sampling.ts) picks who works.
 */
import type { Rng } from '../../random/rng.js';
import { seededRng } from '../../random/rng.js';

/** Options of {@link buildAvailability}. */
export interface AvailabilityOptions {
  readonly devices: number;
  /** Mean online probability per round. Default 0.8. */
  readonly online?: number;
  /** Width of the per-device spread around the mean. Default 0.3. */
  readonly spread?: number;
  /** Probability that a device working on a round drops out before its upload. Default 0.05. */
  readonly dropout?: number;
  readonly seed?: number;
}

/** Per-device online probabilities (bytes, /255) and the dropout rate. */
export interface Availability {
  readonly online: Uint8Array;
  readonly dropout: number;
}

/** Draw the population's availability. */
export function buildAvailability(o: AvailabilityOptions): Availability {
  const w = 'buildAvailability';
  if (!Number.isInteger(o.devices) || o.devices < 1) throw new RangeError(`${w}: devices must be a positive integer, got ${o.devices}`);
  const mean = o.online ?? 0.8;
  const spread = o.spread ?? 0.3;
  const dropout = o.dropout ?? 0.05;
  if (!(mean > 0 && mean <= 1)) throw new RangeError(`${w}: online must be in (0, 1], got ${mean}`);
  if (!(spread >= 0 && spread <= 1)) throw new RangeError(`${w}: spread must be in [0, 1], got ${spread}`);
  if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`${w}: dropout must be in [0, 1), got ${dropout}`);
  const rng = seededRng(o.seed ?? 0);
  const online = new Uint8Array(o.devices);
  for (let i = 0; i < o.devices; i++) {
    const p = Math.min(1, Math.max(0.01, mean + spread * (rng.nextFloat() - 0.5)));
    online[i] = Math.round(p * 255);
  }
  return { online, dropout };
}

/** One online device in a round: its index and whether it would drop out before uploading. */
export interface Draw {
  readonly index: number;
  readonly dropsOut: boolean;
}

/**
 * The devices online this round (device i independently with its own probability), each with
 * whether it would drop out before uploading should the coordinator sample it.
 */
export function drawOnline(rng: Rng, availability: Availability): Draw[] {
  const out: Draw[] = [];
  const { online, dropout } = availability;
  for (let i = 0; i < online.length; i++) {
    if (rng.nextFloat() >= online[i] / 255) continue;
    out.push({ index: i, dropsOut: rng.nextFloat() < dropout });
  }
  return out;
}
