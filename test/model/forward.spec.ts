import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createBase, crossEntropy, evaluateLoss, forward, FrozenBase, generate, logitsFor, quantizeQ8, type KvCache, type LoadedBase } from '../../model/index.js';
import { corpus, maxAbsDiff, realModel } from '../helpers.js';

describe('model/transformer (against llama2.c run.c)', () => {
  let base: FrozenBase;
  before(async () => {
    base = new FrozenBase((await realModel()).base, 'none');
  });
  after(() => base.dispose());

  it('reproduces the golden logits at every prompt position within 1e-4', async () => {
    const { golden } = await realModel();
    const logits = logitsFor(base, Int32Array.from(golden.prompt_ids));
    golden.logits.forEach((row, t) => assert.ok(maxAbsDiff(logits[t], row) < 1e-4, `position ${t}: max diff ${maxAbsDiff(logits[t], row)}`));
  });

  it('reproduces the golden greedy continuation ids and text exactly', async () => {
    const { tokenizer, golden } = await realModel();
    const g = generate(base, tokenizer, golden.prompt, { maxTokens: golden.greedy_ids.length });
    assert.deepEqual([...g.promptIds], golden.prompt_ids);
    assert.deepEqual(g.ids, golden.greedy_ids);
    assert.equal(g.text, golden.greedy_text);
  });

  it('gives the same logits with the KV cache as in one pass', async () => {
    const { tokenizer } = await realModel();
    const ids = tokenizer.encode('The cat sat on the mat and looked at the dog.', { bos: true });
    const full = logitsFor(base, ids);
    let cache: KvCache | undefined;
    for (let t = 0; t < ids.length; t++) {
      const { row, next } = tf.tidy(() => {
        const r = forward(base, ids.subarray(t, t + 1), 1, { cache, returnCache: true });
        r.cache!.layers.forEach((l) => (tf.keep(l.k), tf.keep(l.v)));
        return { row: r.logits.dataSync() as Float32Array, next: r.cache! } as never;
      }) as unknown as { row: Float32Array; next: KvCache };
      cache?.layers.forEach((l) => (l.k.dispose(), l.v.dispose()));
      cache = next;
      assert.ok(maxAbsDiff(row, full[t]) < 1e-4, `position ${t}`);
    }
    cache?.layers.forEach((l) => (l.k.dispose(), l.v.dispose()));
  });

  it('samples reproducibly with a seed and differently with another', async () => {
    const { tokenizer } = await realModel();
    const a = generate(base, tokenizer, 'Once upon a time', { maxTokens: 30, temperature: 1, seed: 7 });
    const b = generate(base, tokenizer, 'Once upon a time', { maxTokens: 30, temperature: 1, seed: 7 });
    const c = generate(base, tokenizer, 'Once upon a time', { maxTokens: 30, temperature: 1, seed: 8 });
    assert.deepEqual(a.ids, b.ids);
    assert.notDeepEqual(a.ids, c.ids);
  });

  it('leaks no tensors in generation and evaluation', async () => {
    const { tokenizer } = await realModel();
    const n = tf.memory().numTensors;
    generate(base, tokenizer, 'Hello', { maxTokens: 5 });
    evaluateLoss(base, tokenizer.encode('A short text to score.', { bos: false }), { startId: tokenizer.startId, context: 8 });
    assert.equal(tf.memory().numTensors, n);
  });

  it('rejects bad arguments with errors naming them, leaking nothing', async () => {
    const loadedRef = await realModel();
    const { tokenizer } = loadedRef;
    assert.throws(() => forward(base, Int32Array.of(1, 2, 3), 2), /forward: batch 2 does not divide 3 tokens/);
    assert.throws(() => tf.tidy(() => forward(base, Int32Array.of(1, 9999), 1).logits), /token id 9999/);
    assert.throws(() => evaluateLoss(base, tokenizer.encode('abc', { bos: false }), { startId: tokenizer.startId, context: 1 }), /context must be/);
    assert.throws(() => generate(base, tokenizer, 'x', { temperature: -1 }), /temperature/);
    assert.throws(() => tf.tidy(() => crossEntropy(tf.zeros([2, 512]) as tf.Tensor2D, Int32Array.of(3, -1))), /crossEntropy: target -1 at 1 is outside the vocabulary/);
    const n = tf.memory().numTensors;
    const bad = new Map([['0.wq', quantizeQ8(new Float32Array(10))]]);
    assert.throws(() => new FrozenBase((loadedRef as { base: LoadedBase }).base, 'int8', { quantized: bad }), /quantized 0.wq has 10 values, expected 4096/);
    assert.equal(tf.memory().numTensors, n);
  });
});

describe('model/frozen-base quantized (TinyStories eval loss vs fp32)', () => {
  it('int8 within 0.5% and int4 within 3% of fp32 on the whole sample, int8 ≤ 1.1 bytes/param', async function () {
    const { base: loaded, tokenizer } = await realModel();
    const tokens = tokenizer.encode(corpus('tinystories-sample.txt'), { bos: false });
    const loss: Record<string, number> = {};
    for (const q of ['none', 'int8', 'int4'] as const) {
      const b = createBase(loaded, q, { tokenizer });
      loss[q] = evaluateLoss(b, tokens, { startId: tokenizer.startId }).loss;
      if (q === 'int8') assert.ok(b.memory().bytesPerParam <= 1.1, `int8 holds ${b.memory().bytesPerParam} bytes/param`);
      b.dispose();
    }
    const rel = (q: 'int8' | 'int4'): number => Math.abs(loss[q] / loss.none - 1);
    assert.ok(loss.none > 1 && loss.none < 2.5, `fp32 loss ${loss.none}`);
    assert.ok(rel('int8') < 0.005, `int8 loss ${loss.int8} vs ${loss.none}`);
    assert.ok(rel('int4') < 0.03, `int4 loss ${loss.int4} vs ${loss.none}`);
  });
});
