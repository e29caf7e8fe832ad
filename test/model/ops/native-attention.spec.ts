import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, forward, initBackend, LoraAdapter, nextGaussian, randomBase, seededRng } from '../../../model/index.js';
import { nativeAddon, type NativeAddon } from '../../../model/ops/native-addon.js';
import { fusedAttentionAvailable, fusedCausalAttention, setNativeAttention } from '../../../model/ops/native-attention.js';
import { ropeTables, rotationT } from '../../../model/rope.js';
import { setNativeThreads } from '../../../model/ops/native-kernels.js';

function gauss(n: number, seed: number): Float32Array {
  const r = seededRng(seed);
  return Float32Array.from({ length: n }, () => nextGaussian(r));
}

/** Textbook causal attention in float64 (exp, max-shifted softmax): the independent reference. */
function reference(q: Float32Array, k: Float32Array, v: Float32Array, B: number, T: number, H: number, kvH: number, hs: number, scale: number): Float64Array {
  const out = new Float64Array(B * T * H * hs);
  const rep = H / kvH;
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = 0; t < T; t++) {
        const g = Math.floor(h / rep);
        const s = new Float64Array(t + 1);
        for (let j = 0; j <= t; j++) {
          let dot = 0;
          for (let d = 0; d < hs; d++) dot += q[((b * T + t) * H + h) * hs + d] * k[((b * T + j) * kvH + g) * hs + d];
          s[j] = dot * scale;
        }
        const m = Math.max(...s);
        let sum = 0;
        for (let j = 0; j <= t; j++) sum += (s[j] = Math.exp(s[j] - m));
        for (let d = 0; d < hs; d++) {
          let acc = 0;
          for (let j = 0; j <= t; j++) acc += s[j] * v[((b * T + j) * kvH + g) * hs + d];
          out[((b * T + t) * H + h) * hs + d] = acc / sum;
        }
      }
  return out;
}

/** The same attention as stock tfjs ops (mask, softmax, matMul): tfjs autograd gives the reference gradient. */
function chain(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, scale: number): tf.Tensor {
  const [B, T, H, hs] = q.shape;
  const rep = H / k.shape[2];
  const qh = tf.transpose(q, [0, 2, 1, 3]); // [B, H, T, hs]
  const idx = tf.tensor1d(Array.from({ length: H }, (_, h) => Math.floor(h / rep)), 'int32');
  const kh = tf.gather(tf.transpose(k, [0, 2, 1, 3]), idx, 1);
  const vh = tf.gather(tf.transpose(v, [0, 2, 1, 3]), idx, 1);
  const mask = tf.tensor2d(Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)), [T, T]);
  const p = tf.softmax(tf.add(tf.mul(tf.matMul(qh, kh, false, true), scale), mask));
  return tf.transpose(tf.matMul(p, vh), [0, 2, 1, 3]).reshape([B, T, H, hs]);
}

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

const SHAPES: [number, number, number, number, number][] = [
  // B, T, H, kvH, hs: odd lengths (vector tails), GQA, head sizes of stories260K and dim256
  [2, 19, 4, 2, 8],
  [1, 37, 2, 2, 32],
  [3, 1, 2, 1, 5],
  [1, 70, 6, 3, 16],
];

describe('model/ops/native-attention (fused causal attention on the native addon)', function () {
  let addon: NativeAddon;
  before(async function () {
    await initBackend('wasm');
    const st = nativeAddon();
    if (!st.loaded) {
      const why = `native addon not available: ${st.reason}`;
      if (process.env.CI && process.env.FEDTUNE_NATIVE !== '0') throw new Error(why);
      console.log(`      (skipped) ${why}`);
      this.skip();
    }
    addon = st.addon;
    assert.ok(fusedAttentionAvailable(), 'initBackend should have installed the attention kernels');
  });
  after(() => {
    setNativeThreads(1);
    setNativeAttention(true);
  });

  it('forward equals a float64 softmax(q kᵀ)v with causal mask: every ISA this CPU has, GQA, odd lengths, 1 and 2 threads', () => {
    const isas = (['generic', 'avx2', 'avx512'] as const).filter((i) => addon.attentionSetIsa(i));
    assert.ok(isas.includes('generic'));
    try {
      for (const isa of isas) {
        addon.attentionSetIsa(isa);
        for (const [B, T, H, kvH, hs] of SHAPES) {
          for (const threads of [1, 2]) {
            const scale = 1 / Math.sqrt(hs);
            const q = gauss(B * T * H * hs, T + hs);
            const k = gauss(B * T * kvH * hs, 2 * T);
            const v = gauss(B * T * kvH * hs, 3 * T);
            const out = new Float32Array(B * T * H * hs).fill(Number.NaN);
            const lse = new Float32Array(B * H * T).fill(Number.NaN);
            addon.attentionForward(q, k, v, out, lse, B, T, H, kvH, hs, scale, threads);
            const err = relErr(out, reference(q, k, v, B, T, H, kvH, hs, scale));
            assert.ok(err < 1e-5, `${isa} [${B},${T},${H},${kvH},${hs}] threads=${threads}: rel err ${err}`);
            // the first query sees one key: its log-sum-exp is its one scaled score
            let s0 = 0;
            for (let d = 0; d < hs; d++) s0 += q[d] * k[d] * scale;
            assert.ok(Math.abs(lse[0] - s0) < 1e-5 * Math.max(1, Math.abs(s0)), `${isa}: lse[0] ${lse[0]} vs ${s0}`);
          }
        }
      }
    } finally {
      addon.attentionSetIsa(isas[isas.length - 1]);
    }
  });

  it('gradients of q, k, v equal tfjs autograd through mask, softmax and matMul; no tensor is left behind', () => {
    for (const [B, T, H, kvH, hs] of SHAPES) {
      for (const threads of [1, 2]) {
        setNativeThreads(threads);
        const scale = 1 / Math.sqrt(hs);
        const q = tf.tensor4d(gauss(B * T * H * hs, 11), [B, T, H, hs]);
        const k = tf.tensor4d(gauss(B * T * kvH * hs, 12), [B, T, kvH, hs]);
        const v = tf.tensor4d(gauss(B * T * kvH * hs, 13), [B, T, kvH, hs]);
        const w = tf.tensor4d(gauss(B * T * H * hs, 14), [B, T, H, hs]);
        const before = tf.memory().numTensors;
        const [mine, ref] = [fusedCausalAttention, chain].map((f) =>
          tf.tidy(() => {
            const loss = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, scale), w));
            const value = f(q, k, v, scale).dataSync();
            return [value, ...tf.grads(loss)([q, k, v]).map((g) => g.dataSync())];
          }),
        );
        assert.equal(tf.memory().numTensors, before, 'tensor count after forward + gradient');
        ['out', 'dq', 'dk', 'dv'].forEach((n, i) => {
          const err = relErr(mine[i], ref[i]);
          assert.ok(err < 2e-5, `${n} [${B},${T},${H},${kvH},${hs}] threads=${threads}: rel err ${err}`);
        });
        tf.dispose([q, k, v, w]);
      }
    }
  });

  it('with RoPE inside: forward and gradients equal RoPE by tf ops (x·cos + (x R)·sin) followed by the chain, both pairings', () => {
    for (const style of ['interleaved', 'neox'] as const) {
      for (const [B, T, H, kvH, hs] of SHAPES.filter(([, , , , h]) => h % 2 === 0)) {
        const scale = 1 / Math.sqrt(hs);
        const { cos, sin } = ropeTables(0, T, hs, { theta: 10000, style });
        const rT = rotationT(hs, style);
        const q = tf.tensor4d(gauss(B * T * H * hs, 21), [B, T, H, hs]);
        const k = tf.tensor4d(gauss(B * T * kvH * hs, 22), [B, T, kvH, hs]);
        const v = tf.tensor4d(gauss(B * T * kvH * hs, 23), [B, T, kvH, hs]);
        const w = tf.tensor4d(gauss(B * T * H * hs, 24), [B, T, H, hs]);
        const roped = (x: tf.Tensor): tf.Tensor4D => {
          const n = x.size / hs;
          const rot = tf.reshape(tf.matMul(tf.reshape(x, [n, hs]), tf.tensor2d(rT, [hs, hs])), x.shape);
          return tf.add(tf.mul(x, tf.tensor4d(cos, [1, T, 1, hs])), tf.mul(rot, tf.tensor4d(sin, [1, T, 1, hs]))) as tf.Tensor4D;
        };
        const fns = [(a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => fusedCausalAttention(a as tf.Tensor4D, b as tf.Tensor4D, c as tf.Tensor4D, scale, { cos, sin, rT }), (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => chain(roped(a), roped(b), c as tf.Tensor4D, scale)];
        const before = tf.memory().numTensors;
        const [mine, ref] = fns.map((f) => tf.tidy(() => [f(q, k, v).dataSync(), ...tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), w)))([q, k, v]).map((g) => g.dataSync())]));
        assert.equal(tf.memory().numTensors, before, 'tensor count');
        ['out', 'dq', 'dk', 'dv'].forEach((n, i) => {
          const err = relErr(mine[i], ref[i]);
          assert.ok(err < 2e-5, `${style} ${n} [${B},${T},${H},${kvH},${hs}]: rel err ${err}`);
        });
        tf.dispose([q, k, v, w]);
      }
    }
    const q = tf.zeros([1, 3, 2, 4]) as tf.Tensor4D;
    const { cos, sin } = ropeTables(0, 3, 4, 10000);
    assert.throws(() => fusedCausalAttention(q, q, q, 1, { cos, sin, rT: new Float32Array(16) }), /fusedCausalAttention: rope.rT must pair every dimension/);
    assert.throws(() => fusedCausalAttention(q, q, q, 1, { cos: cos.subarray(1), sin, rT: rotationT(4, 'neox') }), /rope.cos and rope.sin must hold/);
    q.dispose();
  });

  for (const ropeStyle of ['interleaved', 'neox'] as const)
  it(`the transformer gives the same logits and LoRA gradients with the fused op as with the op chain (${ropeStyle} RoPE)`, () => {
    const cfg = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 61, seqLen: 40, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000, ropeStyle };
    const base = new FrozenBase(randomBase(cfg, 5), 'int8');
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wk', 'wv'], seed: 2 });
    ad.setFromFlat(gauss(ad.parameterCount, 3).map((x) => x * 0.05)); // B ≠ 0: gradients reach q, k and v
    const tokens = Int32Array.from({ length: 3 * 33 }, (_, i) => (i * 31) % cfg.vocabSize);
    const run = (fused: boolean) => {
      assert.equal(setNativeAttention(fused), fused);
      return tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(forward(base, tokens, 3, { adapter: ad }).logits)) as tf.Scalar, ad.trainableVariables());
        return { loss: value.dataSync()[0], grads: ad.trainableVariables().map((x) => grads[x.name].dataSync()) };
      });
    };
    try {
      const [on, off] = [run(true), run(false)];
      assert.ok(Math.abs(on.loss - off.loss) < 1e-5 * Math.abs(off.loss), `loss ${on.loss} vs ${off.loss}`);
      on.grads.forEach((g, i) => assert.ok(relErr(g, off.grads[i]) < 1e-4, `gradient ${i}: rel err ${relErr(g, off.grads[i])}`));
    } finally {
      setNativeAttention(true);
      ad.dispose();
      base.dispose();
    }
  });

  it('misuse throws, naming the function and argument', () => {
    const q = tf.zeros([1, 4, 4, 8]) as tf.Tensor4D;
    const k = tf.zeros([1, 4, 3, 8]) as tf.Tensor4D;
    assert.throws(() => fusedCausalAttention(q, k, k, 1), /fusedCausalAttention: q \[1,4,4,8\] does not go with k/);
    assert.throws(() => fusedCausalAttention(q, q, q, Number.NaN), /fusedCausalAttention: scale must be finite/);
    assert.throws(() => setNativeAttention(1 as unknown as boolean), /setNativeAttention: enabled must be a boolean/);
    const x = new Float32Array(8);
    assert.throws(() => addon.attentionForward(x, x, x, x, x, 1, 2, 2, 1, 8, 1, 1), /attentionForward: an array is shorter/);
    assert.throws(() => addon.attentionForward(x, x, x, x, x, 1, 1, 3, 2, 1, 1, 1), /H must be a multiple of kvH/);
    tf.dispose([q, k]);
  });

  it('FEDTUNE_NATIVE=0 and FEDTUNE_NATIVE_FUSED=0 leave the op chain', () => {
    const backend = fileURLToPath(new URL('../../../model/backend.js', import.meta.url));
    const attention = fileURLToPath(new URL('../../../model/ops/native-attention.js', import.meta.url));
    const script = `const b = await import(${JSON.stringify(backend)}); const a = await import(${JSON.stringify(attention)}); const i = await b.initBackend('wasm'); console.log(JSON.stringify([i.description, a.fusedAttentionAvailable()]));`;
    for (const env of [{ FEDTUNE_NATIVE: '0' }, { FEDTUNE_NATIVE_FUSED: '0' }]) {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, ...env } });
      assert.equal(r.status, 0, r.stderr);
      const [desc, fused] = JSON.parse(r.stdout.trim()) as [string, boolean];
      assert.equal(fused, false, `${JSON.stringify(env)}: ${desc}`);
      assert.doesNotMatch(desc, /attention/);
    }
  });
});
