import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { BOS, FrozenBase, forwardHidden, headLoss, initBackend, LocalTrainer, LoraAdapter, nextGaussian, randomBase, seededRng } from '../../../model/index.js';
import { nativeAddon, type NativeAddon } from '../../../model/ops/native-addon.js';
import { nativeKernelsActive, setNativeKernels, setNativeThreads } from '../../../model/ops/native-kernels.js';

function gauss(n: number, seed: number): Float32Array {
  const r = seededRng(seed);
  return Float32Array.from({ length: n }, () => nextGaussian(r));
}
function rand(shape: number[], seed: number): tf.Tensor {
  return tf.tensor(gauss(shape.reduce((a, b) => a * b, 1), seed), shape);
}

/** Textbook triple loop in float64: the independent reference for the addon's SGEMM. */
function reference(a: Float32Array, b: Float32Array, M: number, N: number, K: number, ta: boolean, tb: boolean): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += (ta ? a[p * M + i] : a[i * K + p]) * (tb ? b[j * K + p] : b[p * N + j]);
      c[i * N + j] = s;
    }
  return c;
}

/** Largest |x − y| relative to the largest |y| (float32 products of length K drift by ~√K ulp). */
function relErr(x: ArrayLike<number>, y: ArrayLike<number>): number {
  assert.equal(x.length, y.length);
  let d = 0;
  let m = 1e-30;
  for (let i = 0; i < x.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return d / m;
}

/** Run `f` with the native products on, then with tfjs's wasm kernels, and return both results. */
function onOff<T>(f: () => T): [T, T] {
  assert.ok(setNativeKernels(true));
  try {
    const on = f();
    setNativeKernels(false);
    return [on, f()];
  } finally {
    setNativeKernels(true);
  }
}

describe('model/ops/native-kernels (native SGEMM for the wasm backend)', function () {
  let addon: NativeAddon;
  before(async function () {
    await initBackend('wasm');
    const st = nativeAddon();
    if (!st.loaded) {
      const why = `native addon not available: ${st.reason}`;
      // CI must build it (npm ci runs native/install.mjs); locally a failed build only skips
      if (process.env.CI && process.env.FEDTUNE_NATIVE !== '0') throw new Error(why);
      console.log(`      (skipped) ${why}`);
      this.skip();
    }
    addon = st.addon;
  });
  after(() => setNativeThreads(1));

  it('sgemm equals a float64 triple loop on odd shapes, transposes, broadcast batches, every ISA this CPU has, 1 and 2 threads', () => {
    const isas = (['generic', 'avx2', 'avx512'] as const).filter((i) => addon.setIsa(i));
    try {
      for (const isa of isas) {
        addon.setIsa(isa);
        for (const [batch, M, N, K] of [[1, 1, 1, 1], [1, 7, 13, 5], [3, 37, 65, 300], [2, 100, 33, 513], [1, 6, 64, 1], [2, 130, 50, 64]]) {
          for (const ta of [false, true])
            for (const tb of [false, true])
              for (const [threads, bcast] of [[1, false], [2, true]] as const) {
                const a = gauss(batch * M * K, M + K);
                const b = gauss((bcast ? 1 : batch) * K * N, N + 1);
                const c = new Float32Array(batch * M * N).fill(Number.NaN);
                addon.sgemm(a, b, c, batch, M, N, K, ta, tb, M * K, bcast ? 0 : K * N, threads);
                for (let i = 0; i < batch; i++) {
                  const want = reference(a.subarray(i * M * K), bcast ? b : b.subarray(i * K * N), M, N, K, ta, tb);
                  const err = relErr(c.subarray(i * M * N, (i + 1) * M * N), want);
                  assert.ok(err < 1e-5, `${isa} [${batch},${M},${N},${K}] ta=${ta} tb=${tb} threads=${threads}: rel err ${err}`);
                }
              }
        }
      }
    } finally {
      addon.setIsa(isas[isas.length - 1]);
    }
  });

  it('sgemm refuses arrays too short for the sizes, naming the argument', () => {
    const x = new Float32Array(6);
    assert.throws(() => addon.sgemm(x, x, x, 1, 3, 3, 3, false, false, 0, 0, 1), /sgemm: a is too short/);
    assert.throws(() => addon.sgemm(x, new Float32Array(4), x, 2, 1, 2, 2, false, false, 2, 4, 1), /sgemm: b is too short/);
    assert.throws(() => addon.sgemm(x, x, new Float32Array(3), 1, 2, 2, 3, false, false, 0, 0, 1), /sgemm: c is too short/);
    assert.throws(() => addon.sgemm(x, [1, 2] as unknown as Float32Array, x, 1, 1, 1, 1, false, false, 0, 0, 1), TypeError);
  });

  it('tf.matMul through the native kernel equals the wasm kernel: odd shapes, transposes, batch dims, broadcasting', () => {
    assert.ok(nativeKernelsActive(), 'initBackend should have installed the native kernels');
    const cases: [number[], number[], boolean, boolean][] = [
      [[5, 7], [7, 3], false, false],
      [[67, 129], [33, 129], false, true],
      [[129, 67], [129, 33], true, false],
      [[31, 17], [9, 31], true, true],
      [[2, 3, 19, 23], [2, 3, 23, 11], false, false],
      [[4, 19, 23], [23, 11], false, false],
      [[1, 19, 23], [4, 11, 23], false, true],
      [[3, 0, 5], [3, 5, 4], false, false],
    ];
    for (const [sa, sb, ta, tb] of cases) {
      const [on, off] = onOff(() => tf.tidy(() => {
        const r = tf.matMul(rand(sa, 1), rand(sb, 2), ta, tb);
        return { shape: r.shape, data: r.dataSync() };
      }));
      assert.deepEqual(on.shape, off.shape, `[${sa}]x[${sb}]`);
      assert.ok(relErr(on.data, off.data) < 1e-5, `[${sa}]x[${sb}] ta=${ta} tb=${tb}: rel err ${relErr(on.data, off.data)}`);
    }
  });

  it('tf.fused.matMul (bias, relu) and matMul gradients equal the wasm kernels', () => {
    const [on, off] = onOff(() => tf.tidy(() => {
      const a = rand([33, 47], 3);
      const b = rand([47, 21], 4);
      const fused = tf.fused.matMul({ a, b, bias: rand([21], 5), activation: 'relu' });
      const w = rand([33, 21], 6);
      const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D), w)))([a, b]);
      return [fused.dataSync(), ...g.map((t) => t.dataSync())];
    }));
    on.forEach((x, i) => assert.ok(relErr(x, off[i]) < 1e-5, `output ${i}: rel err ${relErr(x, off[i])}`));
    assert.ok(on[0].some((v) => v === 0) && on[0].some((v) => v > 0), 'relu should clip some outputs');
  });

  it('a LoRA training step with native products equals the wasm path: loss, gradients, two AdamW steps', async () => {
    const cfg = { dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 97, seqLen: 32, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000 };
    const base = new FrozenBase(randomBase(cfg, 7), 'int8');
    const tokens = Int32Array.from({ length: 600 }, (_, i) => 3 + ((i * 7919) % (cfg.vocabSize - 3)));
    const make = (): LoraAdapter => {
      const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wv', 'w2'], seed: 3 });
      ad.setFromFlat(gauss(ad.parameterCount, 9).map((v) => v * 0.05)); // B ≠ 0, so every gradient flows
      return ad;
    };
    try {
      const inputs = tokens.subarray(0, 4 * 32);
      const targets = tokens.subarray(1, 4 * 32 + 1);
      const [on, off] = onOff(() => {
        const ad = make();
        const out = tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => headLoss(base, forwardHidden(base, inputs, 4, { adapter: ad }).hidden, targets), ad.trainableVariables());
          return { loss: value.dataSync()[0], grads: ad.trainableVariables().map((v) => grads[v.name].dataSync()) };
        });
        ad.dispose();
        return out;
      });
      assert.ok(Math.abs(on.loss - off.loss) < 1e-5 * Math.abs(off.loss), `loss ${on.loss} vs ${off.loss}`);
      on.grads.forEach((g, i) => assert.ok(relErr(g, off.grads[i]) < 1e-4, `gradient ${i}: rel err ${relErr(g, off.grads[i])}`));

      const runs: { first: number; last: number; flat: Float32Array }[] = [];
      for (const native of [true, false]) {
        setNativeKernels(native);
        const ad = make();
        const r = await new LocalTrainer(base, ad, tokens, { startId: BOS, steps: 2, batchSize: 4, seqLen: 32, seed: 1, lr: 1e-3 }).run();
        runs.push({ first: r.firstLoss, last: r.lastLoss, flat: ad.toFlat() });
        ad.dispose();
      }
      setNativeKernels(true);
      assert.ok(Math.abs(runs[0].first - runs[1].first) < 1e-5 * runs[1].first && Math.abs(runs[0].last - runs[1].last) < 1e-5 * runs[1].last, `losses ${JSON.stringify(runs.map((r) => [r.first, r.last]))}`);
      // AdamW moves each weight by ≤ lr per step; equal gradients give equal moves (sign flips only where |g| ~ rounding)
      let moved = 0;
      runs[0].flat.forEach((v, i) => (moved = Math.max(moved, Math.abs(v - runs[1].flat[i]))));
      assert.ok(moved < 1e-4, `adapters differ by up to ${moved} after two steps`);
    } finally {
      base.dispose();
    }
  });

  it('misuse of the switches throws, naming the function', () => {
    assert.throws(() => setNativeKernels('yes' as unknown as boolean), /setNativeKernels: enabled must be a boolean/);
    assert.throws(() => setNativeThreads(0), /setNativeThreads: n must be an integer/);
  });
});
