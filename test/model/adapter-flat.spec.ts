import assert from 'node:assert/strict';
import { adapterFlatFromTensors, flatLayout, packTrainable, padRankFlat, trainableRanges, truncateRankTensors, unpackTrainable, adapterTensorsFromFlat, encodeAdapter, encodeAdapterTensors, FrozenBase, initialAdapterFlat, LoraAdapter, loraConfig, readBaseInfo } from '../../model/index.js';
import { MODEL, realModel } from '../helpers.js';

describe('model/adapter-flat', () => {
  let base: FrozenBase;
  before(async () => {
    base = new FrozenBase((await realModel()).base, 'none');
  });
  after(() => base.dispose());

  it('a fresh adapter\'s flat values, tensors and file bytes match LoraAdapter exactly, without tfjs', () => {
    const lora = loraConfig({ rank: 4, alpha: 8, targets: ['wq', 'wv', 'w2'], seed: 9 });
    const ad = LoraAdapter.create(base.config, base.sha256, lora);
    const flat = initialAdapterFlat(base.config, lora);
    assert.deepEqual(flat, ad.toFlat());
    // give B non-zero values so the B path is exercised too
    for (let i = 0; i < flat.length; i++) if (flat[i] === 0) flat[i] = Math.sin(i) * 1e-2;
    ad.setFromFlat(flat);
    const tensors = adapterTensorsFromFlat(base.config, lora, flat);
    assert.deepEqual(tensors, ad.toTensors());
    assert.deepEqual(adapterFlatFromTensors(base.config, lora, tensors), flat);
    assert.deepEqual(encodeAdapterTensors({ baseSha256: base.sha256, lora, baseConfig: base.config }, tensors), encodeAdapter(ad));
    ad.dispose();
  });

  it('refuses a vector or tensors of the wrong shape, naming them', () => {
    const lora = loraConfig({ rank: 2 });
    assert.throws(() => adapterTensorsFromFlat(base.config, lora, new Float32Array(3)), /flat has 3 values/);
    const t = adapterTensorsFromFlat(base.config, lora, initialAdapterFlat(base.config, lora));
    assert.throws(() => adapterFlatFromTensors(base.config, lora, t.slice(1)), /missing tensor layers\.0\.wq\.lora_A/);
  });

  it('readBaseInfo names the same base as the loaded checkpoint, for .bin and .gguf', () => {
    const bin = readBaseInfo(MODEL.bin);
    assert.equal(bin.format, 'llama2c');
    assert.equal(bin.sha256, base.sha256);
    assert.deepEqual(bin.config, base.config);
    const gguf = readBaseInfo(MODEL.gguf);
    assert.equal(gguf.format, 'gguf');
    assert.notEqual(gguf.sha256, bin.sha256);
    assert.equal(gguf.config.dim, bin.config.dim);
  });

  it('FFA-LoRA sends only B: trainable ranges pack and unpack exactly, and are the B blocks', () => {
    const lora = loraConfig({ rank: 4, targets: ['wq', 'w2'], freezeA: true, seed: 2 });
    const { ranges, length, total } = trainableRanges(base.config, lora);
    const { segments } = flatLayout(base.config, lora);
    assert.equal(length, segments.reduce((n, s) => n + s.outDim * 4, 0));
    assert.ok(length < total);
    const flat = Float32Array.from({ length: total }, (_, i) => i + 1);
    const packed = packTrainable(flat, ranges);
    const back = unpackTrainable(packed, ranges, total);
    for (const s of segments) {
      for (let i = s.aOffset; i < s.bOffset; i++) assert.equal(back[i], 0);
      for (let i = s.bOffset; i < s.bOffset + s.outDim * 4; i++) assert.equal(back[i], flat[i]);
    }
    assert.deepEqual(trainableRanges(base.config, { ...lora, freezeA: false }).ranges, [[0, total]]);
    assert.throws(() => unpackTrainable(packed.subarray(1), ranges, total), /packed has/);
  });

  it('heterogeneous ranks: truncating to rank k keeps α/r, and padding back puts the components where they were', () => {
    const lora = loraConfig({ rank: 4, alpha: 8, targets: ['wq', 'w2'], seed: 3 });
    const flat = initialAdapterFlat(base.config, lora);
    for (let i = 0; i < flat.length; i++) flat[i] += Math.cos(i) * 1e-2; // B non-zero
    const full = LoraAdapter.fromTensors(base.config, base.sha256, lora, adapterTensorsFromFlat(base.config, lora, flat));
    const lowCfg = loraConfig({ ...lora, rank: 2, alpha: 4 });
    const low = LoraAdapter.fromTensors(base.config, base.sha256, lowCfg, truncateRankTensors(full.toTensors(), 2));
    assert.equal(low.scale, full.scale);
    const padded = padRankFlat(base.config, lora, 2, low.toFlat());
    // equal to the full adapter with components 2 and 3 zeroed
    const want = flat.slice();
    for (const s of flatLayout(base.config, lora).segments) {
      for (let i = 0; i < s.inDim; i++) for (let t = 2; t < 4; t++) want[s.aOffset + i * 4 + t] = 0;
      for (let t = 2; t < 4; t++) for (let o = 0; o < s.outDim; o++) want[s.bOffset + t * s.outDim + o] = 0;
    }
    assert.deepEqual(padded, want);
    assert.throws(() => padRankFlat(base.config, lora, 5, low.toFlat()), /lowRank must be an integer in \[1, 4\]/);
    assert.throws(() => truncateRankTensors(full.toTensors(), 9), /exceeds/);
    full.dispose();
    low.dispose();
  });
});
