import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { FedAvgAccumulator, nativeFedAvgStatus, setNativeFedAvg } from '../../aggregators/index.js';
import { nativeAddon, type NativeAddon } from '../../model/ops/native-addon.js';
import { seededRng } from '../../random/index.js';

type Fold = (sum: Float64Array, update: Float32Array, weight: number) => number;
type FoldMany = (sum: Float64Array, updates: Float32Array[], weights: Float64Array) => number;

/** Written here, independent of both kernels: sum[i] = sum[i] + w·u[i] in float64, in order. */
function reference(sum0: Float64Array, ups: readonly [Float32Array, number][]): Float64Array {
  const sum = sum0.slice();
  for (const [u, w] of ups) for (let i = 0; i < u.length; i++) sum[i] = sum[i] + w * u[i];
  return sum;
}

function sameBits(a: Float64Array, b: Float64Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new BigUint64Array(a.buffer, a.byteOffset, a.length);
  const ub = new BigUint64Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs: ${a[i]} vs ${b[i]}`);
}

/**
 * Values that make the rounding visible: many magnitudes, subnormal floats, ±0, float32 max, and
 * weights far from 1 (w·u of float32 max by 1e300 overflows to ±Infinity in every engine alike).
 */
function hostile(length: number, seed: number): Float32Array {
  const key = `${length}/${seed}`;
  const hit = memo.get(key);
  if (hit) return hit.slice();
  const u = makeHostile(length, seed);
  if (length > 10_000) memo.set(key, u.slice()); // the long ones are made once, for every ISA
  return u;
}
const memo = new Map<string, Float32Array>();

function makeHostile(length: number, seed: number): Float32Array {
  const r = seededRng(seed);
  const u = Float32Array.from({ length }, () => (r.nextFloat() - 0.5) * 10 ** Math.floor(r.nextFloat() * 16 - 8));
  const specials = [0, -0, 1e-45, -1.4e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38, 1, -1];
  for (let i = 0; i < length; i += 11) u[i] = specials[(i / 11) % specials.length];
  return u;
}

describe('aggregators/fedavg-native (the addon fold behind FedAvgAccumulator)', function () {
  let addon: NativeAddon;
  let fold: Fold;
  let foldMany: FoldMany;
  before(function () {
    const st = nativeAddon();
    if (!st.loaded || !nativeFedAvgStatus().available) {
      const why = st.loaded ? nativeFedAvgStatus().reason : st.reason;
      if (process.env.CI && process.env.FEDTUNE_NATIVE !== '0') throw new Error(`native fold not available: ${why}`);
      console.log(`      (skipped) native fold not available: ${why}`);
      this.skip();
    }
    addon = st.addon;
    fold = (addon as unknown as { fedavgFold: Fold }).fedavgFold;
    foldMany = (addon as unknown as { fedavgFoldMany: FoldMany }).fedavgFoldMany;
  });

  it('every ISA this CPU has folds bit-identically to the float64 reference and to the wasm kernel, on views at odd offsets and odd lengths', () => {
    const start = addon.isa() as 'generic' | 'avx2' | 'avx512';
    const isas = (['generic', 'avx2', 'avx512'] as const).filter((i) => addon.setIsa(i));
    try {
      for (const isa of isas) {
        addon.setIsa(isa);
        for (const length of [0, 1, 3, 15, 16, 17, 63, 64, 65, 1000, 4099]) {
          const weights = [1, 0.1, 37.3, 1e-300, 1e300, 3];
          // each update a view 1..3 floats into a larger buffer (unaligned for 32-byte loads)
          const ups = weights.map((w, k): [Float32Array, number] => [hostile(length + 3, 10 * length + k).subarray(1 + (k % 3), 1 + (k % 3) + length), w]);
          const start64 = Float64Array.from({ length }, (_, i) => (i % 5) - 2.5);
          const want = reference(start64, ups);
          const sum = start64.slice();
          for (const [u, w] of ups) assert.equal(fold(sum, u, w), -1, `${isa}: a finite update is folded`);
          sameBits(sum, want, `${isa}, length ${length}`);
        }
      }
    } finally {
      addon.setIsa(start);
    }
    // the accumulator's two engines on the same hostile data
    const length = 5003;
    const ups = [0.5, 2, 1e300, 7].map((w, k): [Float32Array, number] => [hostile(length, 77 + k), w]);
    const sums = [true, false].map((on) => {
      setNativeFedAvg(on);
      try {
        const acc = new FedAvgAccumulator(length);
        assert.equal(acc.engine, on ? 'native' : 'wasm');
        for (const [u, w] of ups) acc.add(u, w);
        return acc.weightedSum();
      } finally {
        setNativeFedAvg(true);
      }
    });
    sameBits(sums[0], sums[1], 'native vs wasm accumulator');
    sameBits(sums[0], reference(new Float64Array(length), ups), 'native accumulator vs reference');
  });

  it('fedavgFoldMany (up to 4 updates per pass over the sum) gives the bits of successive folds, on every ISA, and stops at the first bad update', () => {
    const start = addon.isa() as 'generic' | 'avx2' | 'avx512';
    const isas = (['generic', 'avx2', 'avx512'] as const).filter((i) => addon.setIsa(i));
    try {
      for (const isa of isas) {
        addon.setIsa(isa);
        // 2^20 + 5 values and more go 4 per pass (shorter ones 1 per pass): both paths, and a remainder group
        const cases = [0, 5, 8, 67, 1029].flatMap((length) => [0, 1, 3, 4, 5, 9].map((count) => [length, count])).concat([[2 ** 20 + 5, 7]]);
        for (const [length, count] of cases) {
          {
            const ups = Array.from({ length: count }, (_, k): [Float32Array, number] => [hostile(length + 1, 31 * count + k).subarray(1), [0.3, 7, 1e-3, 12.5, 1e300][k % 5]]);
            const sum = Float64Array.from({ length }, (_, i) => Math.sin(i) * 1e3);
            const want = reference(sum, ups);
            assert.equal(foldMany(sum, ups.map((u) => u[0]), Float64Array.from(ups, (u) => u[1])), -1);
            sameBits(sum, want, `${isa}: ${count} updates of ${length}`);
          }
        }
        // a bad update at position 5 (second group of 4 for the long one): 0–4 folded, 5 onwards not
        for (const length of [301, 2 ** 20 + 1]) {
          const ups = Array.from({ length: 8 }, (_, k): [Float32Array, number] => [hostile(length, 900 + k), 1 + k]);
          ups[5][0][length - 1] = NaN;
          ups[6][0][0] = Infinity;
          const sum = new Float64Array(length);
          assert.equal(foldMany(sum, ups.map((u) => u[0]), Float64Array.from(ups, (u) => u[1])), 5, `${isa}, length ${length}`);
          sameBits(sum, reference(new Float64Array(length), ups.slice(0, 5)), `${isa}, length ${length}: the updates before the bad one, and only they`);
        }
      }
    } finally {
      addon.setIsa(start);
    }
    const s4 = new Float64Array(4);
    assert.throws(() => foldMany(s4, [new Float32Array(4)], new Float64Array(2)), /fedavgFoldMany: weights must have one entry per update/);
    assert.throws(() => foldMany(s4, [new Float32Array(3)], new Float64Array(1)), /fedavgFoldMany: every update must have the sum's length/);
    assert.throws(() => foldMany(s4, [new Float64Array(4) as unknown as Float32Array], new Float64Array(1)), (e: Error) => e instanceof TypeError && /updates must be an array of Float32Arrays/.test(e.message));
    assert.throws(() => foldMany(s4, [], [] as unknown as Float64Array), (e: Error) => e instanceof TypeError && /weights must be a Float64Array/.test(e.message));
  });

  it('reports the first non-finite value and leaves the sum untouched, wherever it is', () => {
    for (const length of [1, 9, 64, 65, 200, 4099]) {
      for (const at of [0, length >> 1, length - 1]) {
        for (const bad of [NaN, Infinity, -Infinity]) {
          const u = hostile(length, at);
          u[at] = bad;
          if (at + 7 < length) u[at + 7] = NaN; // a later one must not be the one reported
          const sum = Float64Array.from({ length }, (_, i) => i);
          const before = sum.slice();
          assert.equal(fold(sum, u, 2), at, `length ${length}, ${bad} at ${at}`);
          sameBits(sum, before, `untouched after ${bad} at ${at} of ${length}`);
        }
      }
    }
  });

  it('refuses wrong argument types and lengths, naming the function and the argument', () => {
    const s = new Float64Array(4);
    const u = new Float32Array(4);
    assert.throws(() => fold(new Float32Array(4) as unknown as Float64Array, u, 1), (e: Error) => e instanceof TypeError && /fedavgFold: sum must be a Float64Array/.test(e.message));
    assert.throws(() => fold(s, new Float64Array(4) as unknown as Float32Array, 1), (e: Error) => e instanceof TypeError && /fedavgFold: update must be a Float32Array/.test(e.message));
    assert.throws(() => fold(s, new Float32Array(3), 1), (e: Error) => e instanceof RangeError && /fedavgFold: update and sum must have the same length/.test(e.message));
    assert.throws(() => fold(s, u, '1' as unknown as number), (e: Error) => e instanceof TypeError && /fedavgFold: weight must be a number/.test(e.message));
    assert.throws(() => (fold as unknown as (...a: unknown[]) => number)(s, u), /fedavgFold: expected 3 arguments/);
    assert.throws(() => setNativeFedAvg(1 as unknown as boolean), /setNativeFedAvg: on must be a boolean/);
  });

  it('with FEDTUNE_NATIVE=0 (child process) the accumulator falls back to wasm, with the same bits', () => {
    const length = 1001;
    const ups = [1.5, 3, 0.25].map((w, k): [Float32Array, number] => [hostile(length, 500 + k), w]);
    const acc = new FedAvgAccumulator(length);
    assert.equal(acc.engine, 'native');
    for (const [u, w] of ups) acc.add(u, w);
    const mod = new URL('../../aggregators/index.js', import.meta.url).href;
    const script = `
      const { FedAvgAccumulator, nativeFedAvgStatus } = await import(${JSON.stringify(mod)});
      const ups = ${JSON.stringify(ups.map(([u, w]) => [Array.from(new Uint32Array(u.buffer, u.byteOffset, u.length)), w]))};
      const acc = new FedAvgAccumulator(${length});
      for (const [bits, w] of ups) acc.add(new Float32Array(Uint32Array.from(bits).buffer), w);
      const s = acc.weightedSum();
      console.log(JSON.stringify({ engine: acc.engine, status: nativeFedAvgStatus(), bits: Array.from(new BigUint64Array(s.buffer), String) }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, FEDTUNE_NATIVE: '0' }, timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim()) as { engine: string; status: { available: boolean; reason: string }; bits: string[] };
    assert.equal(out.engine, 'wasm');
    assert.deepEqual(out.status, { available: false, reason: 'disabled by FEDTUNE_NATIVE=0' });
    sameBits(new Float64Array(BigUint64Array.from(out.bits, BigInt).buffer), acc.weightedSum(), 'FEDTUNE_NATIVE=0 child vs native in this process');
  });
});
