import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FrozenBase, forwardHidden, headLoss, initBackend, LocalTrainer, LoraAdapter, randomBase, seededRng, type LlamaConfig } from '../../model/index.js';

/**
 * Gradient checkpointing must change memory, never results: the loss and every LoRA gradient
 * equal those of the plain tape (tfjs's own autodiff of the same forward), for a Qwen2-like and
 * a Qwen3-like random model, int4 base, LoRA on every matrix, with dropout.
 */
const CONFIGS: LlamaConfig[] = [
  { arch: 'qwen2', ropeStyle: 'neox', dim: 64, hiddenDim: 96, nLayers: 3, nHeads: 4, nKvHeads: 2, vocabSize: 97, seqLen: 32, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1e6, attnBias: true },
  { arch: 'qwen3', ropeStyle: 'neox', dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 32, vocabSize: 97, seqLen: 32, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1e6, qkNorm: true },
];

interface Run { loss: number; grads: Map<string, Float32Array>; tensorsAfterForward: number }

function lossAndGrads(base: FrozenBase, ad: LoraAdapter, tokens: Int32Array, targets: Int32Array, checkpoint: boolean): Run {
  let out: Run | undefined;
  tf.tidy(() => {
    const rng = seededRng(5);
    const before = tf.memory().numTensors;
    let tensorsAfterForward = 0;
    const { value, grads } = tf.variableGrads(() => {
      const hidden = forwardHidden(base, tokens, 2, { adapter: ad, dropoutRng: rng, checkpoint }).hidden;
      tensorsAfterForward = tf.memory().numTensors - before;
      return headLoss(base, hidden, targets);
    }, ad.trainableVariables());
    out = { loss: value.dataSync()[0], grads: new Map(Object.entries(grads).map(([k, g]) => [k, g.dataSync() as Float32Array])), tensorsAfterForward };
  });
  return out as Run;
}

describe('model/transformer gradient checkpointing', () => {
  before(async () => {
    await initBackend('wasm');
  });

  it('gives the plain tape\'s loss and LoRA gradients (to float32 rounding), dropout included', () => {
    for (const config of CONFIGS) {
      const base = new FrozenBase(randomBase(config, 3, { std: 0.2, randomVectors: true }), 'int4');
      const ad = LoraAdapter.create(config, base.sha256, { rank: 4, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'], dropout: 0.2, seed: 1 });
      for (const p of ad.list()) p.bT.assign(tf.tidy(() => tf.randomNormal(p.bT.shape, 0, 0.1, 'float32', 7)));
      const r = seededRng(9);
      const tokens = Int32Array.from({ length: 2 * 12 }, () => Math.floor(r.nextFloat() * 97));
      const targets = Int32Array.from({ length: 2 * 12 }, () => Math.floor(r.nextFloat() * 97));
      const plain = lossAndGrads(base, ad, tokens, targets, false);
      const ck = lossAndGrads(base, ad, tokens, targets, true);
      assert.ok(Math.abs(plain.loss - ck.loss) < 1e-5, `${config.arch} loss ${ck.loss} vs ${plain.loss}`);
      assert.equal(ck.grads.size, plain.grads.size);
      // what backprop holds: each layer's input instead of all its intermediates (factor 3: the
      // plain tape itself keeps fewer since its element-wise ops save only what backprop reads)
      assert.ok(ck.tensorsAfterForward * 3 < plain.tensorsAfterForward, `${config.arch}: ${ck.tensorsAfterForward} tensors alive after the checkpointed forward vs ${plain.tensorsAfterForward}`);
      assert.equal(plain.grads.size, 2 * 7 * config.nLayers);
      for (const [name, g] of plain.grads) {
        const h = ck.grads.get(name) as Float32Array;
        const scale = Math.max(...g.map(Math.abs));
        assert.ok(scale > 0, `${name} has a zero gradient`);
        g.forEach((v, i) => assert.ok(Math.abs(v - h[i]) <= 1e-4 * scale + 1e-7, `${config.arch} ${name}[${i}]: ${h[i]} vs ${v}`));
      }
      ad.dispose();
      base.dispose();
    }
  });

  it('LocalTrainer with checkpoint trains the same adapter as without; the option is refused with a KV cache', async () => {
    const config = CONFIGS[0];
    const base = new FrozenBase(randomBase(config, 4, { std: 0.2 }), 'int8');
    const tokens = Int32Array.from({ length: 400 }, (_, i) => (i * 31) % 97);
    const run = async (checkpoint: boolean): Promise<Float32Array> => {
      const ad = LoraAdapter.create(config, base.sha256, { rank: 4, seed: 2 });
      await new LocalTrainer(base, ad, tokens, { startId: 0, steps: 3, batchSize: 2, seqLen: 16, seed: 1, checkpoint }).run();
      const out = Float32Array.from(ad.list().flatMap((p) => [...p.bT.dataSync()]));
      ad.dispose();
      return out;
    };
    const a = await run(false);
    const b = await run(true);
    const scale = Math.max(...a.map(Math.abs));
    assert.ok(scale > 0);
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]) <= 1e-4 * scale, `bT value ${i}: ${b[i]} vs ${v}`));
    assert.throws(() => tf.tidy(() => { forwardHidden(base, tokens.subarray(0, 4), 1, { checkpoint: true, returnCache: true }); }), /forward: opts.checkpoint does not go with/);
    base.dispose();
  });
});
