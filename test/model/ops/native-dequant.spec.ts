import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { dequantizeInto, initBackend, nextGaussian, quantizeQ4, quantizeQ8, seededRng, type QuantizedArray } from '../../../model/index.js';
import { nativeAddon } from '../../../model/ops/native-addon.js';
import { nativeDequantized, setNativeDequant } from '../../../model/ops/native-dequant.js';
import { setNativeThreads } from '../../../model/ops/native-kernels.js';

function values(n: number, seed: number, scale: number): Float32Array {
  const r = seededRng(seed);
  return Float32Array.from({ length: n }, () => scale * nextGaussian(r));
}

describe('model/ops/native-dequant (Q8_0 / Q4_0 blocks into the wasm heap)', function () {
  before(async function () {
    await initBackend('wasm');
    const st = nativeAddon();
    if (!st.loaded) {
      const why = `native addon not available: ${st.reason}`;
      if (process.env.CI && process.env.FEDTUNE_NATIVE !== '0') throw new Error(why);
      console.log(`      (skipped) ${why}`);
      this.skip();
    }
  });
  after(() => {
    setNativeThreads(1);
    setNativeDequant(true);
  });

  it('is bit-identical to dequantizeInto: Q8_0 and Q4_0, partial last blocks, tiny (subnormal fp16) and large scales, 1 and 2 threads', () => {
    assert.ok(setNativeDequant(true));
    const cases: [QuantizedArray, string][] = [];
    for (const [n, scale] of [[1, 1], [37, 1e-6], [1000, 3], [70000, 0.02], [131072 + 5, 50]] as const) {
      cases.push([quantizeQ8(values(n, n, scale), 32), `q8 n=${n} scale=${scale}`]);
      cases.push([quantizeQ4(values(n, n + 1, scale), 16), `q4/16 n=${n} scale=${scale}`]);
      cases.push([quantizeQ4(values(n, n + 2, scale), 32), `q4/32 n=${n} scale=${scale}`]);
    }
    for (const threads of [1, 2]) {
      setNativeThreads(threads);
      for (const [q, name] of cases) {
        const before = tf.memory().numTensors;
        const t = nativeDequantized(q, [q.length]);
        assert.ok(t, name);
        const got = t.dataSync();
        t.dispose();
        assert.equal(tf.memory().numTensors, before);
        const want = dequantizeInto(q, new Float32Array(q.length));
        for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) assert.fail(`${name} threads=${threads}: [${i}] ${got[i]} vs ${want[i]}`);
      }
    }
  });

  it('declines where it cannot run, and refuses a shape of the wrong size', () => {
    const q = quantizeQ8(values(64, 1, 1), 32);
    assert.throws(() => nativeDequantized(q, [8, 7]), /nativeDequantized: shape \[8,7\] does not hold 64 values/);
    setNativeDequant(false);
    assert.equal(nativeDequantized(q, [8, 8]), undefined);
    setNativeDequant(true);
    assert.equal(nativeDequantized({ ...q, kind: 'q6_k' }, [8, 8]), undefined);
    const st = nativeAddon();
    if (st.loaded) {
      assert.throws(() => st.addon.dequantize(8, new Uint8Array(64), q.scales, 32, new Float32Array(64), 64, 1), /Q8_0 data must be an Int8Array/);
      assert.throws(() => st.addon.dequantize(8, q.data, q.scales, 32, new Float32Array(10), 64, 1), /dequantize: an array is shorter/);
    }
    assert.throws(() => setNativeDequant(0 as unknown as boolean), /setNativeDequant: enabled must be a boolean/);
  });
});
