import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  AdapterFileError,
  decodeAdapter,
  encodeAdapter,
  encodeLlama2cCheckpoint,
  FrozenBase,
  loadAdapter,
  logitsFor,
  LoraAdapter,
  loraConfig,
  mergeAdapter,
  parseLlama2cCheckpoint,
  saveAdapter,
  unmergeAdapter,
  type LoraTensor,
  type MatrixName,
} from '../../model/index.js';
import { maxAbsDiff, realModel } from '../helpers.js';

function softmax(x: Float32Array): Float64Array {
  const m = Math.max(...x);
  const e = Float64Array.from(x, (v) => Math.exp(v - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** An adapter with random non-zero B so that it changes the model. */
function randomAdapter(base: FrozenBase, targets: MatrixName[] = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3']): LoraAdapter {
  const a = LoraAdapter.create(base.config, base.sha256, { rank: 4, alpha: 8, targets: [...targets], seed: 3 });
  for (const p of a.list()) {
    const r = tf.randomNormal(p.bT.shape, 0, 0.02, 'float32', 11) as tf.Tensor2D;
    p.bT.assign(r);
    r.dispose();
  }
  return a;
}

describe('model/lora', () => {
  let base: FrozenBase;
  before(async () => {
    base = new FrozenBase((await realModel()).base, 'none');
  });
  after(() => base.dispose());

  it('a fresh adapter (B = 0) gives logits identical to the base', async () => {
    const { tokenizer } = await realModel();
    const ids = tokenizer.encode('Once upon a time there was a dog.', { bos: true });
    const ad = LoraAdapter.create(base.config, base.sha256, { rank: 8, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] });
    const plain = logitsFor(base, ids);
    const adapted = logitsFor(base, ids, ad);
    plain.forEach((row, t) => assert.deepEqual(adapted[t], row));
    ad.dispose();
  });

  it('merged weights give the same logits as base + adapter within 1e-5 (of the logit scale), and unmerge restores the base', async () => {
    const { tokenizer, base: loaded } = await realModel();
    const ids = tokenizer.encode('Lily saw a big red ball in the park.', { bos: true });
    const ad = randomAdapter(base);
    const withAdapter = logitsFor(base, ids, ad);
    const plain = logitsFor(base, ids);
    assert.ok(maxAbsDiff(withAdapter[3], plain[3]) > 1e-2, 'the adapter must change the logits for this test to mean anything');
    const mergedWeights = mergeAdapter(loaded.weights, ad);
    const merged = new FrozenBase({ ...loaded, weights: mergedWeights }, 'none');
    const m = logitsFor(merged, ids);
    // float32 sums in another order differ by a few ulps of the row's largest logit (≈ 15 here),
    // so the bound is 1e-5 of that scale; probabilities must agree to 1e-5 absolute
    m.forEach((row, t) => {
      const scale = Math.max(1, ...Array.from(withAdapter[t], Math.abs));
      assert.ok(maxAbsDiff(row, withAdapter[t]) <= 1e-5 * scale, `position ${t}: ${maxAbsDiff(row, withAdapter[t])} vs scale ${scale}`);
      assert.ok(maxAbsDiff(softmax(row), softmax(withAdapter[t])) < 1e-5, `position ${t} probabilities`);
    });
    const back = unmergeAdapter(mergedWeights, ad);
    assert.ok(maxAbsDiff(back.layers[2].w1, loaded.weights.layers[2].w1) < 1e-6);
    assert.deepEqual(back.layers[2].rmsAtt, loaded.weights.layers[2].rmsAtt);
    merged.dispose();
    ad.dispose();
  });

  it('saves and loads (safetensors) with identical tensors and config', () => {
    const ad = randomAdapter(base, ['wq', 'w2']);
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-'));
    const file = join(dir, 'a.safetensors');
    saveAdapter(file, ad);
    const back = loadAdapter(file, base);
    assert.deepEqual(back.config, ad.config);
    const t1 = ad.toTensors();
    const t2 = back.toTensors();
    t1.forEach((t, i) => assert.deepEqual(t2[i], t));
    // a safetensors header any reader understands
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    assert.equal(header.__metadata__.format, 'fedtune-lora');
    assert.equal(header.__metadata__.base_sha256, base.sha256);
    assert.deepEqual(header['layers.0.w2.lora_A'].shape, [4, 172]);
    assert.deepEqual(header['layers.0.w2.lora_B'].shape, [64, 4]);
    ad.dispose();
    back.dispose();
  });

  it('refuses an adapter made for another base, naming both', async () => {
    const { base: loaded } = await realModel();
    const w = loaded.weights;
    const changed = { ...w, rmsFinal: Float32Array.from(w.rmsFinal, (v, i) => (i === 0 ? v + 1 : v)) };
    const other = parseLlama2cCheckpoint(encodeLlama2cCheckpoint(changed), 'other.bin');
    assert.notEqual(other.sha256, base.sha256);
    const ad = LoraAdapter.create(other.weights.config, other.sha256, {});
    assert.throws(
      () => decodeAdapter(encodeAdapter(ad), base, 'other-adapter.safetensors'),
      (e: Error) => e instanceof AdapterFileError && e.message.includes(other.sha256.slice(0, 16)) && e.message.includes(base.sha256.slice(0, 16)),
    );
    ad.dispose();
  });

  it('rejects malformed files and mismatched shapes', () => {
    assert.throws(() => decodeAdapter(new Uint8Array(4), base, 'x'), /too small/);
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-'));
    const header = Buffer.from('{"a":1} ', 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, 'junk'), Buffer.concat([len, header]));
    assert.throws(() => loadAdapter(join(dir, 'junk'), base), (e: Error) => e instanceof AdapterFileError && /format is "\(none\)"/.test(e.message));
    assert.throws(() => loadAdapter(join(dir, 'missing'), base), /cannot read adapter .*ENOENT/);
    const bad: LoraTensor[] = [{ name: 'layers.0.wq.lora_A', shape: [2, 64], data: new Float32Array(128) }];
    const n = tf.memory().numTensors;
    assert.throws(() => LoraAdapter.fromTensors(base.config, base.sha256, loraConfig({ rank: 4, targets: ['wq'] }), bad), /shape \[2,64\] but .* need \[4,64\]/);
    // a rejected file leaks no variables, even when its first tensors were fine
    const good = randomAdapter(base, ['wq']);
    const tensors = good.toTensors();
    const m = tf.memory().numTensors;
    assert.throws(() => LoraAdapter.fromTensors(base.config, base.sha256, good.config, tensors.slice(0, -1)), /missing tensor layers.4.wq.lora_B/);
    assert.equal(tf.memory().numTensors, m);
    good.dispose();
    assert.equal(tf.memory().numTensors, n);
  });

  it('flattens to one vector and back exactly; a wrong length is refused without changes', () => {
    const ad = randomAdapter(base, ['wq', 'w2']);
    const flat = ad.toFlat();
    assert.equal(flat.length, ad.parameterCount);
    const other = LoraAdapter.create(base.config, base.sha256, { rank: 4, alpha: 8, targets: ['wq', 'w2'], seed: 99 });
    other.setFromFlat(flat);
    assert.deepEqual(other.toTensors(), ad.toTensors());
    assert.throws(() => other.setFromFlat(flat.subarray(1)), /got \d+ values, the adapter has/);
    assert.throws(() => other.setFromFlat(Float32Array.from(flat, (v, i) => (i === 5 ? NaN : v))), /non-finite value at 5/);
    assert.deepEqual(other.toFlat(), flat);
    const n = tf.memory().numTensors;
    other.setFromFlat(flat);
    assert.equal(tf.memory().numTensors, n);
    ad.dispose();
    other.dispose();
  });

  it('validates its config with errors naming the field', () => {
    assert.throws(() => loraConfig({ rank: 0 }), /rank must be a positive integer/);
    assert.throws(() => loraConfig({ targets: ['wz' as never] }), /unknown target "wz"/);
    assert.throws(() => loraConfig({ dropout: 1 }), /dropout must be in \[0, 1\)/);
    assert.throws(() => loraConfig({ alpha: -1 }), /alpha must be a positive number/);
    assert.deepEqual(loraConfig({ targets: ['wv', 'wq'] }).targets, ['wq', 'wv']);
  });

  it('draws A from the seed: equal seeds give equal A, and B starts at zero', () => {
    const a = LoraAdapter.create(base.config, base.sha256, { seed: 42, freezeA: true });
    const b = LoraAdapter.create(base.config, base.sha256, { seed: 42, freezeA: true });
    const c = LoraAdapter.create(base.config, base.sha256, { seed: 43, freezeA: true });
    assert.deepEqual(a.toTensors()[0].data, b.toTensors()[0].data);
    assert.notDeepEqual(a.toTensors()[0].data, c.toTensors()[0].data);
    assert.ok(a.toTensors()[1].data.every((v) => v === 0));
    assert.equal(a.trainableVariables().length, a.list().length);
    [a, b, c].forEach((x) => x.dispose());
  });
});
