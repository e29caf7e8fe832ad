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

let enabled = true;
let fold: FedAvgFold | null | undefined;
let why = '';

function load(): FedAvgFold | null {
  if (fold !== undefined) return fold;
  const st = nativeAddon();
  if (!st.loaded) {
    why = st.reason;
    return (fold = null);
  }
  const f = (st.addon as unknown as { fedavgFold?: unknown }).fedavgFold;
  if (typeof f !== 'function') {
    why = `${st.path} has no fedavgFold (built before it existed: run node native/install.mjs)`;
    return (fold = null);
  }
  return (fold = f as FedAvgFold);
}

/** The native fold when the addon provides it and it is enabled, else null (accumulators then use wasm). */
export function nativeFedAvgFold(): FedAvgFold | null {
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
