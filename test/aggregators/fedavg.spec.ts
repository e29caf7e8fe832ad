import assert from 'node:assert/strict';
import { FedAvgAccumulator, fedAvg, type FedAvgEngine, nativeFedAvgStatus, setNativeFedAvg } from '../../aggregators/index.js';
import { seededRng } from '../../random/index.js';

/** The reference, written here and independent of the accumulator: Σ w·u per element in float64, in order, then ÷ Σ w. */
function scalarReference(updates: readonly { update: Float32Array; weight: number }[]): { sum: Float64Array; mean: Float32Array } {
  const n = updates[0].update.length;
  const sum = new Float64Array(n);
  let total = 0;
  for (const { update, weight } of updates) {
    for (let i = 0; i < n; i++) sum[i] = sum[i] + weight * update[i];
    total += weight;
  }
  const mean = new Float32Array(n);
  for (let i = 0; i < n; i++) mean[i] = sum[i] / total;
  return { sum, mean };
}

/** Updates with values over many magnitudes (so float64 rounding of w·u and of the sum matters) and non-integer weights. */
function updatesOf(count: number, length: number, seed: number): { update: Float32Array; weight: number }[] {
  const r = seededRng(seed);
  const rng = (): number => r.nextFloat();
  return Array.from({ length: count }, () => ({
    update: Float32Array.from({ length }, () => (rng() - 0.5) * 10 ** Math.floor(rng() * 12 - 6)),
    weight: 0.1 + rng() * 37.3,
  }));
}

/** Bitwise equality of two float arrays (distinguishes −0 and +0, which deepEqual on numbers does too, and NaNs). */
function assertBitIdentical(a: Float64Array | Float32Array, b: Float64Array | Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const ub = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) {
      const k = Math.floor(i / a.BYTES_PER_ELEMENT);
      assert.fail(`${what}: element ${k} differs: ${a[k]} vs ${b[k]}`);
    }
  }
}

function accumulate(updates: readonly { update: Float32Array; weight: number }[]): FedAvgAccumulator {
  const acc = new FedAvgAccumulator(updates[0].update.length);
  for (const u of updates) acc.add(u.update, u.weight);
  return acc;
}

/** Runs `body` with WebAssembly instantiation failing, so the accumulator takes its scalar fallback. */
function withoutWasm<T>(body: () => T): T {
  const real = WebAssembly.Instance;
  (WebAssembly as { Instance: unknown }).Instance = function NoWasm() {
    throw new RangeError('wasm unavailable in this test');
  };
  try {
    return body();
  } finally {
    (WebAssembly as { Instance: unknown }).Instance = real;
  }
}

/** Runs `body` with accumulators built on `engine` ('native' only when the addon has the fold). */
function withEngine<T>(engine: FedAvgEngine, body: () => T): T {
  setNativeFedAvg(engine === 'native');
  try {
    return engine === 'scalar' ? withoutWasm(body) : body();
  } finally {
    setNativeFedAvg(true);
  }
}

/** The fast engines this machine has: wasm always (Node ≥ 16.4), native when the addon was built. */
const ENGINES: FedAvgEngine[] = nativeFedAvgStatus().available ? ['native', 'wasm'] : ['wasm'];

describe('aggregators/fedavg', () => {
  it('is the example-weighted mean (hand-computed)', () => {
    const r = fedAvg([
      { update: Float32Array.of(1, 0, -2), weight: 1 },
      { update: Float32Array.of(4, 2, 2), weight: 3 },
    ]);
    assert.deepEqual(Array.from(r), [13 / 4, 6 / 4, 4 / 4]);
  });

  // lengths: below one 8-lane group, not a multiple of 8, and (2^20 + 13) past the whole-update stage, so chunked
  for (const engine of ENGINES) {
    for (const length of [1, 7, 8, 1001, 2 ** 20 + 13]) {
      it(`the ${engine} kernel is bit-identical to an independent scalar float64 loop (length ${length})`, () => {
        const ups = updatesOf(length > 10_000 ? 3 : 40, length, length);
        const want = scalarReference(ups);
        withEngine(engine, () => {
          const acc = accumulate(ups);
          assert.equal(acc.engine, engine);
          assertBitIdentical(acc.weightedSum(), want.sum, 'weighted sum');
          assertBitIdentical(acc.mean(), want.mean, 'mean');
          assertBitIdentical(fedAvg(ups), want.mean, 'fedAvg');
        });
      });
    }
  }

  for (const engine of [...ENGINES, 'scalar'] as FedAvgEngine[]) {
    it(`addAll (${engine}) gives the bits of successive adds; argument errors add nothing, a non-finite update stops it after the ones before`, () => {
      const length = 1003;
      const ups = updatesOf(10, length, 4242);
      const want = scalarReference(ups);
      withEngine(engine, () => {
        const acc = new FedAvgAccumulator(length);
        assert.equal(acc.engine, engine);
        acc.addAll(ups.slice(0, 1));
        acc.addAll([]);
        acc.addAll(ups.slice(1));
        assert.equal(acc.count, 10);
        assertBitIdentical(acc.weightedSum(), want.sum, 'addAll weighted sum');
        assertBitIdentical(acc.mean(), want.mean, 'addAll mean');
        assert.equal(acc.weight, ups.reduce((s, u) => s + u.weight, 0));

        const part = new FedAvgAccumulator(length);
        assert.throws(() => part.addAll([ups[0], { update: new Float32Array(3), weight: 1 }]), /addAll \(item 1\): update has 3 values, expected 1003/);
        assert.throws(() => part.addAll([ups[0], { update: ups[1].update, weight: -1 }]), /addAll \(item 1\): weight must be a positive finite number/);
        assert.throws(() => part.addAll([ups[0], null as unknown as { update: Float32Array; weight: number }]), TypeError);
        assert.equal(part.count, 0);
        const bad = ups[6].update.slice();
        bad[777] = NaN;
        assert.throws(() => part.addAll([...ups.slice(0, 6), { update: bad, weight: 1 }, ...ups.slice(7)]), /addAll: item 6: update holds a non-finite value at 777$/);
        assert.equal(part.count, 6);
        assertBitIdentical(part.weightedSum(), scalarReference(ups.slice(0, 6)).sum, 'after a rejected item: its predecessors, and only they');
      });
    });
  }

  it('the scalar fallback (no wasm) is bit-identical to the same reference', () => {
    for (const length of [5, 1001]) {
      const ups = updatesOf(30, length, 99 + length);
      const want = scalarReference(ups);
      const acc = withEngine('scalar', () => new FedAvgAccumulator(length));
      assert.equal(acc.engine, 'scalar');
      for (const u of ups) acc.add(u.update, u.weight);
      assertBitIdentical(acc.weightedSum(), want.sum, `fallback weighted sum (length ${length})`);
      assertBitIdentical(acc.mean(), want.mean, `fallback mean (length ${length})`);
      assert.throws(() => acc.add(Float32Array.from({ length }, (_, i) => (i === 3 ? NaN : 0)), 1), /non-finite value at 3/);
      assertBitIdentical(acc.weightedSum(), want.sum, 'a rejected update leaves the fallback sum alone');
    }
  });

  it('streams: adding one at a time equals the one-shot mean, with O(model) state', () => {
    const ups = Array.from({ length: 50 }, (_, k) => ({ update: Float32Array.from({ length: 64 }, (_, i) => Math.cos(i + k)), weight: 1 + (k % 5) }));
    const acc = new FedAvgAccumulator(64);
    ups.forEach((u) => acc.add(u.update, u.weight));
    assert.equal(acc.count, 50);
    assert.deepEqual(acc.mean(), fedAvg(ups));
    const expect0 = ups.reduce((s, u) => s + u.weight * u.update[0], 0) / ups.reduce((s, u) => s + u.weight, 0);
    assert.ok(Math.abs(acc.mean()[0] - expect0) < 1e-6);
  });

  it('rejects wrong lengths, bad weights and non-finite values without changing its state', () => {
    const acc = new FedAvgAccumulator(2);
    acc.add(Float32Array.of(1, 1), 1);
    assert.throws(() => acc.add(Float32Array.of(1), 1), /update has 1 values, expected 2/);
    assert.throws(() => acc.add(Float32Array.of(1, 1), 0), /weight must be a positive finite number/);
    assert.throws(() => acc.add(Float32Array.of(1, Infinity), 1), /non-finite value at 1/);
    assert.equal(acc.count, 1);
    assert.deepEqual(Array.from(acc.mean()), [1, 1]);
    assert.throws(() => new FedAvgAccumulator(2).mean(), /no updates/);
  });

  for (const engine of ENGINES) {
    it(`a rejected update leaves a long (chunked for wasm) sum untouched too (${engine})`, () => {
      const length = 2 ** 20 + 13;
      const ups = updatesOf(2, length, 7);
      const acc = withEngine(engine, () => accumulate(ups));
      assert.equal(acc.engine, engine);
      const bad = ups[0].update.slice();
      bad[length - 2] = -Infinity; // in the last chunk, after earlier chunks passed the check
      bad[length - 1] = NaN;
      assert.throws(() => acc.add(bad, 1), new RegExp(`non-finite value at ${length - 2}$`));
      assertBitIdentical(acc.weightedSum(), scalarReference(ups).sum, 'sum after a rejected long update');
      assert.equal(acc.count, 2);
    });
  }
});
