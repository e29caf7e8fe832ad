import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { crossEntropy, FrozenBase, forward, initBackend, LoraAdapter, nextGaussian, randomBase, seededRng } from '../../../model/index.js';
import { leanVariableGrads } from '../../../model/ops/lean-grads.js';
import { nativeAddon } from '../../../model/ops/native-addon.js';
import { setNativeThreads } from '../../../model/ops/native-kernels.js';
import { fusedNll, fusedRmsNorm, fusedRowwiseAvailable, fusedSwiglu, setNativeRowwise } from '../../../model/ops/native-rowwise.js';

function rand(shape: number[], seed: number, scale = 1, shift = 0): tf.Tensor {
  const r = seededRng(seed);
  return tf.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => shift + scale * nextGaussian(r)), shape);
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

// the references: stock tfjs ops, differentiated by tfjs's own autograd
const rmsChain = (x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w);
const swigluChain = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.mul(tf.mul(a, tf.sigmoid(a)), b);

/** Value and gradients of sum(f(a, b) · probe) for the fused op and the chain. */
function compare(fused: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, chain: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, a: tf.Tensor, b: tf.Tensor, probe: tf.Tensor): number[] {
  const [mine, ref] = [fused, chain].map((f) =>
    tf.tidy(() => [f(a, b).dataSync(), ...tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y), probe)))([a, b]).map((g) => g.dataSync())]),
  );
  return mine.map((m, i) => relErr(m, ref[i]));
}

describe('model/ops/native-rowwise (fused RMSNorm and SwiGLU on the native addon)', function () {
  before(async function () {
    await initBackend('wasm');
    const st = nativeAddon();
    if (!st.loaded) {
      const why = `native addon not available: ${st.reason}`;
      if (process.env.CI && process.env.FEDTUNE_NATIVE !== '0') throw new Error(why);
      console.log(`      (skipped) ${why}`);
      this.skip();
    }
    assert.ok(fusedRowwiseAvailable(), 'initBackend should have installed the row-wise kernels');
  });
  after(() => {
    setNativeThreads(1);
    setNativeRowwise(true);
  });

  it('fusedRmsNorm and its x and w gradients equal the tfjs chain: odd sizes, rank 1–3, 1 and 2 threads; no tensor left behind', () => {
    for (const shape of [[13], [7, 13], [3, 5, 64], [1500, 64], [9, 1]]) {
      for (const threads of [1, 2]) {
        setNativeThreads(threads);
        const dim = shape[shape.length - 1];
        const x = rand(shape, dim, 2, 0.5);
        const w = rand([dim], 3, 0.3, 1);
        const probe = rand(shape, 4);
        const before = tf.memory().numTensors;
        const errs = compare((a, b) => fusedRmsNorm(a, b as tf.Tensor1D, 1e-5), (a, b) => rmsChain(a, b, 1e-5), x, w, probe);
        assert.equal(tf.memory().numTensors, before, 'tensor count');
        ['y', 'dx', 'dw'].forEach((n, i) => assert.ok(errs[i] < 2e-5, `${n} [${shape}] threads=${threads}: rel err ${errs[i]}`));
        tf.dispose([x, w, probe]);
      }
    }
  });

  it('fusedSwiglu and its gradients equal the tfjs chain, tails and saturated inputs included, 1 and 2 threads', () => {
    for (const shape of [[5], [7, 13], [400, 172], [3, 33]]) {
      for (const threads of [1, 2]) {
        setNativeThreads(threads);
        const a = rand(shape, 5, 6); // σ saturates near ±18
        const b = rand(shape, 6);
        const probe = rand(shape, 7);
        const before = tf.memory().numTensors;
        const errs = compare(fusedSwiglu, swigluChain, a, b, probe);
        assert.equal(tf.memory().numTensors, before, 'tensor count');
        ['y', 'da', 'db'].forEach((n, i) => assert.ok(errs[i] < 2e-5, `${n} [${shape}] threads=${threads}: rel err ${errs[i]}`));
        tf.dispose([a, b, probe]);
      }
    }
  });

  it('fusedNll equals a float64 log-sum-exp minus the target logit, and its gradient softmax − one-hot; 1 and 2 threads', () => {
    for (const [N, V] of [[7, 13], [300, 512], [2, 1], [5, 1027]]) {
      for (const threads of [1, 2]) {
        setNativeThreads(threads);
        const logits = rand([N, V], V + N, 4);
        const targets = Int32Array.from({ length: N }, (_, i) => (i * 7 + 3) % V);
        const dnll = rand([N], 17);
        const x = logits.dataSync();
        const g = dnll.dataSync();
        // float64 reference
        const want = new Float64Array(N);
        const wantGrad = new Float64Array(N * V);
        for (let i = 0; i < N; i++) {
          let m = -Infinity;
          for (let c = 0; c < V; c++) m = Math.max(m, x[i * V + c]);
          let s = 0;
          for (let c = 0; c < V; c++) s += Math.exp(x[i * V + c] - m);
          const lse = m + Math.log(s);
          want[i] = lse - x[i * V + targets[i]];
          for (let c = 0; c < V; c++) wantGrad[i * V + c] = g[i] * (Math.exp(x[i * V + c] - lse) - (c === targets[i] ? 1 : 0));
        }
        const before = tf.memory().numTensors;
        const [nll, grad] = tf.tidy(() => [fusedNll(logits as tf.Tensor2D, targets).dataSync(), tf.grad((l: tf.Tensor) => tf.sum(tf.mul(fusedNll(l as tf.Tensor2D, targets), dnll)))(logits).dataSync()]);
        assert.equal(tf.memory().numTensors, before, 'tensor count');
        assert.ok(relErr(nll, want) < 1e-5, `nll [${N},${V}] threads=${threads}: rel err ${relErr(nll, want)}`);
        assert.ok(relErr(grad, wantGrad) < 1e-5, `dlogits [${N},${V}] threads=${threads}: rel err ${relErr(grad, wantGrad)}`);
        tf.dispose([logits, dnll]);
      }
    }
    assert.throws(() => fusedNll(tf.zeros([2, 3]) as tf.Tensor2D, Int32Array.from([0, 3])), /fusedNll: target 3 at 1 is outside the vocabulary \[0, 3\)/);
  });

  it('under leanVariableGrads with a frozen norm weight (its gradient skipped), x gets the chain\'s gradient', async () => {
    const x = tf.variable(rand([40, 16], 8), true, `rowwise-x-${Date.now()}`);
    const w = rand([16], 9, 0.2, 1) as tf.Tensor1D;
    const probe = rand([40, 16], 10);
    try {
      let got: Float32Array | undefined;
      const prof = await tf.profile(() => {
        tf.tidy(() => {
          got = leanVariableGrads(() => tf.sum(tf.mul(fusedRmsNorm(x, w, 1e-5), probe)) as tf.Scalar, [x]).grads[x.name].dataSync() as Float32Array;
        });
      });
      const want = tf.tidy(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(rmsChain(v, w, 1e-5), probe)))(x).dataSync());
      assert.ok(relErr(got as Float32Array, want) < 2e-5, `dx rel err ${relErr(got as Float32Array, want)}`);
      assert.ok(prof.kernels.some((k) => k.name === 'FedtuneRmsNormGrad'), 'the fused gradient kernel ran');
    } finally {
      tf.dispose([x, w, probe]);
    }
  });

  it('the transformer and its cross-entropy give the same loss and LoRA gradients with the fused row-wise ops as without', () => {
    const cfg = { dim: 48, hiddenDim: 100, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 61, seqLen: 40, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
    const base = new FrozenBase(randomBase(cfg, 5), 'int8');
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wv', 'w1', 'w2'], seed: 2 });
    ad.setFromFlat(ad.toFlat().map((v, i) => v + 0.05 * Math.sin(i)));
    const tokens = Int32Array.from({ length: 2 * 30 }, (_, i) => (i * 31) % cfg.vocabSize);
    const run = (fused: boolean) => {
      assert.equal(setNativeRowwise(fused), fused);
      return tf.tidy(() => {
        const targets = Int32Array.from(tokens, (t) => (t * 5 + 1) % cfg.vocabSize);
        const weights = Float32Array.from(tokens, (_, i) => (i % 3 === 0 ? 0 : 1 + (i % 2)));
        const { value, grads } = leanVariableGrads(() => crossEntropy(forward(base, tokens, 2, { adapter: ad }).logits, targets, weights), ad.trainableVariables());
        return { loss: value.dataSync()[0], grads: ad.trainableVariables().map((v) => grads[v.name].dataSync()) };
      });
    };
    try {
      const [on, off] = [run(true), run(false)];
      assert.ok(Math.abs(on.loss - off.loss) < 1e-5 * Math.abs(off.loss), `loss ${on.loss} vs ${off.loss}`);
      on.grads.forEach((g, i) => assert.ok(relErr(g, off.grads[i]) < 1e-4, `gradient ${i}: rel err ${relErr(g, off.grads[i])}`));
    } finally {
      setNativeRowwise(true);
      ad.dispose();
      base.dispose();
    }
  });

  it('misuse throws, naming the function and argument', () => {
    const x = tf.zeros([4, 8]);
    assert.throws(() => fusedRmsNorm(x, tf.zeros([7]) as tf.Tensor1D, 1e-5), /fusedRmsNorm: w \[7\] must be 1-D/);
    assert.throws(() => fusedRmsNorm(x, tf.zeros([8]) as tf.Tensor1D, -1), /fusedRmsNorm: eps must be/);
    assert.throws(() => fusedSwiglu(x, tf.zeros([8, 4])), /fusedSwiglu: a is \[4,8\] but b is \[8,4\]/);
    assert.throws(() => setNativeRowwise('on' as unknown as boolean), /setNativeRowwise: enabled must be a boolean/);
    const st = nativeAddon();
    if (st.loaded) assert.throws(() => st.addon.swigluForward(new Float32Array(3), new Float32Array(4), new Float32Array(4), 4, 1), /swigluForward: an array is shorter/);
    tf.dispose(x);
  });
});
