import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, forwardHidden, headLoss, initBackend, LoraAdapter, randomBase, seededRng, type LlamaConfig } from '../../../model/index.js';
import { leanVariableGrads } from '../../../model/ops/lean-grads.js';
import { leanRmsNorm } from '../../../model/ops/lean-ops.js';

/**
 * leanVariableGrads must change memory only: the same loss and gradients as tfjs's own
 * tf.variableGrads on a LoRA training step (and a closed-form gradient on a toy with a variable
 * used several times), no tensor left behind, and a lower tensor high-water than tfjs's backprop.
 */
const CONFIG: LlamaConfig = { arch: 'qwen2', ropeStyle: 'neox', dim: 64, hiddenDim: 96, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 97, seqLen: 32, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1e6, attnBias: true };

type Grads = typeof tf.variableGrads;

function step(base: FrozenBase, ad: LoraAdapter, grads: Grads): { loss: number; grads: Map<string, Float32Array> } {
  const tokens = Int32Array.from({ length: 2 * 24 }, (_, i) => (i * 37 + 5) % CONFIG.vocabSize);
  const targets = Int32Array.from({ length: 2 * 24 }, (_, i) => (i * 53 + 11) % CONFIG.vocabSize);
  let out: { loss: number; grads: Map<string, Float32Array> } | undefined;
  tf.tidy(() => {
    const rng = seededRng(5);
    const r = grads(() => headLoss(base, forwardHidden(base, tokens, 2, { adapter: ad, dropoutRng: rng }).hidden, targets), ad.trainableVariables());
    out = { loss: r.value.dataSync()[0], grads: new Map(Object.entries(r.grads).map(([k, g]) => [k, g.dataSync() as Float32Array])) };
  });
  return out as { loss: number; grads: Map<string, Float32Array> };
}

describe('model/ops/lean-grads', () => {
  let base: FrozenBase;
  let ad: LoraAdapter;
  before(async () => {
    await initBackend('wasm');
    base = new FrozenBase(randomBase(CONFIG, 3, { std: 0.2, randomVectors: true }), 'int8');
    ad = LoraAdapter.create(base.config, base.sha256, { rank: 4, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'], dropout: 0.1, seed: 9 });
    // B = 0 would make A's gradient 0: give B values so every gradient is exercised
    ad.setFromFlat(Float32Array.from(ad.toFlat(), (v, i) => v + 0.05 * Math.sin(i)));
  });
  after(() => {
    ad.dispose();
    base.dispose();
  });

  it('gives tf.variableGrads\' loss and every LoRA gradient on a training step (int8 base, all targets, dropout)', () => {
    const ref = step(base, ad, tf.variableGrads);
    const lean = step(base, ad, leanVariableGrads as unknown as Grads);
    assert.equal(lean.loss, ref.loss);
    assert.equal(lean.grads.size, ad.trainableVariables().length);
    for (const [name, g] of ref.grads) {
      const l = lean.grads.get(name) as Float32Array;
      let maxAbs = 0;
      let maxDiff = 0;
      for (let i = 0; i < g.length; i++) {
        maxAbs = Math.max(maxAbs, Math.abs(g[i]));
        maxDiff = Math.max(maxDiff, Math.abs(g[i] - l[i]));
      }
      assert.ok(maxAbs > 0, `${name}: zero gradient, the check would be empty`);
      assert.ok(maxDiff <= 1e-6 * maxAbs, `${name}: differs by ${maxDiff} (max |g| ${maxAbs})`);
    }
  });

  it('matches the closed-form gradient when a variable is used several times and a gradient passes through unchanged', () => {
    const v = tf.variable(tf.tensor1d([0.5, -1.5, 2, 3]), true, `lean-toy-${Date.now()}`);
    const w = tf.variable(tf.tensor1d([1, 2, 3, 4]), true, `lean-toy-w-${Date.now()}`);
    try {
      tf.tidy(() => {
        // f = Σ v² + Σ v + Σ (v·w) + Σ reshape(v) ⇒ ∂f/∂v = 2v + 2 + w, ∂f/∂w = v
        const { value, grads } = leanVariableGrads(() => tf.addN([tf.sum(tf.square(v)), tf.sum(v), tf.sum(tf.mul(v, w)), tf.sum(tf.reshape(v, [2, 2]))]) as tf.Scalar, [v, w]);
        const vv = [0.5, -1.5, 2, 3];
        const ww = [1, 2, 3, 4];
        assert.equal(value.dataSync()[0], vv.reduce((s, x, i) => s + x * x + 2 * x + x * ww[i], 0));
        assert.deepEqual(Array.from(grads[v.name].dataSync()), vv.map((x, i) => 2 * x + 2 + ww[i]));
        assert.deepEqual(Array.from(grads[w.name].dataSync()), vv);
      });
    } finally {
      v.dispose();
      w.dispose();
    }
  });

  it('skips the gradient of a frozen RMSNorm weight (no Sum over rows) and still gives a trainable one, as tf.variableGrads', async () => {
    const x = tf.variable(tf.randomNormal([40, 16], 0, 1, 'float32', 21), true, `lean-norm-x-${Date.now()}`);
    const frozen = tf.randomNormal([16], 1, 0.2, 'float32', 22) as tf.Tensor1D;
    const trained = tf.variable(tf.randomNormal([16], 1, 0.2, 'float32', 23), true, `lean-norm-w-${Date.now()}`);
    const w = tf.randomNormal([40, 16], 0, 1, 'float32', 24);
    try {
      for (const [name, nw, vars] of [['frozen', frozen, [x]], ['trainable', trained, [x, trained]]] as const) {
        const f = () => tf.sum(tf.mul(leanRmsNorm(x, nw as tf.Tensor1D, 1e-5), w)) as tf.Scalar;
        const want = tf.tidy(() => Object.fromEntries(Object.entries(tf.variableGrads(f, [...vars]).grads).map(([k, g]) => [k, Array.from(g.dataSync())])));
        let got: Record<string, number[]> = {};
        // the weight's gradient is a Sum of a [40, 16] input to [16] (the loss's own Sum gives a scalar)
        const prof = await tf.profile(() => {
          got = tf.tidy(() => Object.fromEntries(Object.entries(leanVariableGrads(f, [...vars]).grads).map(([k, g]) => [k, Array.from(g.dataSync())])));
        });
        const sums = prof.kernels.filter((k) => k.name === 'Sum' && tf.util.arraysEqual(k.inputShapes[0] ?? [], [40, 16]) && tf.util.arraysEqual(k.outputShapes[0] ?? [], [16])).length;
        assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), name);
        for (const k of Object.keys(want)) got[k].forEach((v, i) => assert.ok(Math.abs(v - want[k][i]) <= 1e-5 * (1 + Math.abs(want[k][i])), `${name} ${k}[${i}]: ${v} vs ${want[k][i]}`));
        assert.equal(sums, name === 'frozen' ? 0 : 1, `${name}: column sums of the norm input`);
      }
    } finally {
      tf.dispose([x, frozen, trained, w]);
    }
  });

  it('leaves no tensor behind, and when backprop reaches the first op holds a fraction of what tfjs holds', () => {
    const tensors = tf.memory().numTensors;
    step(base, ad, leanVariableGrads as unknown as Grads);
    assert.equal(tf.memory().numTensors, tensors);
    // a chain of 30 ops on a 16K-value variable; a probe op right after the variable records the
    // tensor bytes alive when its gradient runs (the last node of backprop): tfjs still holds
    // every op's saved tensors and every intermediate gradient then, a refcounting autograd none
    const v = tf.variable(tf.randomNormal([16384], 0, 1, 'float32', 1), true, `lean-chain-${Date.now()}`);
    const held = (grads: Grads): number => {
      let bytes = 0;
      const probe = tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
        save([]);
        return { value: tf.mul(x, 1), gradFunc: (dy: tf.Tensor) => ((bytes = tf.memory().numBytes), tf.mul(dy, 1)) };
      }) as unknown as Parameters<typeof tf.customGrad>[0]);
      const before = tf.memory().numBytes;
      tf.tidy(() => {
        grads(() => {
          let y = probe(v) as tf.Tensor;
          for (let i = 0; i < 30; i++) y = tf.sin(tf.mul(y, 1.01));
          return tf.sum(y) as tf.Scalar;
        }, [v]);
      });
      return bytes - before;
    };
    try {
      const stock = held(tf.variableGrads);
      const lean = held(leanVariableGrads as unknown as Grads);
      assert.ok(stock > 30 * 16384 * 4, `tfjs held only ${stock} B: the probe measured nothing`);
      assert.ok(lean < 0.2 * stock, `lean held ${lean} B at the first op, tfjs ${stock} B`);
    } finally {
      v.dispose();
    }
  });

  it('refuses a non-function and a list without trainable variables', () => {
    assert.throws(() => leanVariableGrads(42 as unknown as () => tf.Scalar, []), TypeError);
    const c = tf.variable(tf.scalar(1), false, `lean-frozen-${Date.now()}`);
    try {
      assert.throws(() => leanVariableGrads(() => tf.mul(c, 2) as tf.Scalar, [c]), /leanVariableGrads: none of the variables is trainable/);
    } finally {
      c.dispose();
    }
  });
});
