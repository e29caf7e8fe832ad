/**
 * The native accelerator behind {@link FedAvgAccumulator}: the `fedavgFold` kernel of fedtune's
 * optional N-API addon (native/src/fedavg_*.cc), which reads the caller's Float32Array and the
 * float64 sum where they are (no copy into wasm memory), checks the update for non-finite values
 * in one pass and adds `sum + w·u` per element in a second (AVX2 or portable SIMD, no fused
 * multiply-add, so bit-identical to the wasm kernel and the scalar loop). Absent addon (build
 * failed or skipped, FEDTUNE_NATIVE=0, or an addon built before the fold existed): the wasm path.
 */
import { nativeAddon } from '../model/ops/native-addon.js';

/**
 * Folds `update` into `sum` in place: returns −1 when every `sum[i] = sum[i] + weight·update[i]`
 * was applied, else the index of the update's first non-finite value (and `sum` is untouched).
 */
export type FedAvgFold = (sum: Float64Array, update: Float32Array, weight: number) => number;

/**
 * Folds `updates[j]` with `weights[j]` into `sum` as successive {@link FedAvgFold} calls would (same
 * bits), up to 4 per pass over the sum, stopping at the first update holding a non-finite value:
 * returns −1 when all were folded, else that update's index (those before it were folded).
 */
export type FedAvgFoldMany = (sum: Float64Array, updates: readonly Float32Array[], weights: Float64Array) => number;

/** The addon's two folds. */
export interface NativeFolds {
  readonly one: FedAvgFold;
  readonly many: FedAvgFoldMany;
}

let enabled = true;
let fold: NativeFolds | null | undefined;
let why = '';

function load(): NativeFolds | null {
  if (fold !== undefined) return fold;
  const st = nativeAddon();
  if (!st.loaded) {
    why = st.reason;
    return (fold = null);
  }
  const a = st.addon as unknown as { fedavgFold?: unknown; fedavgFoldMany?: unknown };
  if (typeof a.fedavgFold !== 'function' || typeof a.fedavgFoldMany !== 'function') {
    why = `${st.path} has no fedavgFold/fedavgFoldMany (built before they existed: run node native/install.mjs)`;
    return (fold = null);
  }
  return (fold = { one: a.fedavgFold as FedAvgFold, many: a.fedavgFoldMany as FedAvgFoldMany });
}

/** The native folds when the addon provides them and they are enabled, else null (accumulators then use wasm). */
export function nativeFedAvgFold(): NativeFolds | null {
  return enabled ? load() : null;
}

/**
 * Turn the native fold on or off for accumulators created from now on (tests and benches compare
 * the paths; it is on by default). Returns whether the native fold is now in use.
 */
export function setNativeFedAvg(on: boolean): boolean {
  if (typeof on !== 'boolean') throw new TypeError(`setNativeFedAvg: on must be a boolean, got ${typeof on}`);
  enabled = on;
  return nativeFedAvgFold() !== null;
}

/** Whether the native fold can be used, and if not, why. */
export function nativeFedAvgStatus(): { readonly available: boolean; readonly reason: string } {
  const f = load();
  return f ? { available: true, reason: 'loaded' } : { available: false, reason: why };
}
