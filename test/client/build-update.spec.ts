import assert from 'node:assert/strict';
import { buildUpdate, devicePrivacyRngs, encodePrivateUpdate, privateUpdate, updateDelta, updateLayout, type UpdateInput, type UpdateWork } from '../../client/build-update.js';
import { flatLayout } from '../../model/adapter-flat.js';
import type { LlamaConfig } from '../../model/config.js';
import { loraConfig } from '../../model/lora-config.js';
import { CLIP_TOLERANCE, l2Norm, withinClipBound } from '../../privacy/clip.js';
import { decodeUpdate, UPDATE_QUANT_BLOCK } from '../../proto/update-codec.js';
import { seededRng } from '../../random/rng.js';

/** A tiny synthetic model shape: 2 layers, dim 8, grouped-query (kv width 4). */
const CONFIG: LlamaConfig = { dim: 8, hiddenDim: 12, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 16, seqLen: 8, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
const LORA = loraConfig({ rank: 4, targets: ['wq', 'wv'], seed: 1 });

function randomFlat(n: number, seed: number, scale = 1): Float32Array {
  const rng = seededRng(seed);
  return Float32Array.from({ length: n }, () => (2 * rng.nextFloat() - 1) * scale);
}

function stats(x: ArrayLike<number>): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i] / x.length;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - m) ** 2 / (x.length - 1);
  return { mean: m, std: Math.sqrt(v) };
}

/** An input whose delta (local − global) is `delta`, in the full layout of `n` values. */
function inputFor(delta: Float32Array, work: Partial<UpdateWork>, seed = 1): UpdateInput {
  const global = randomFlat(delta.length, 1000 + seed, 0.1);
  return {
    local: Float32Array.from(global, (g, i) => g + delta[i]),
    global,
    layout: { ranges: [[0, delta.length]], length: delta.length, total: delta.length },
    work: { clipNorm: 0, deviceNoiseStd: 0, encoding: 'f32', ...work },
    trained: { steps: 3, batchSize: 4 },
    rngs: devicePrivacyRngs(seededRng(seed)),
  };
}

describe('client/build-update: the device-side update pipeline on synthetic arrays', () => {
  it('clips to the round bound: the result is within C (checked as the coordinator checks it) and the norm reported is the one before clipping', () => {
    for (const [k, c] of [0.01, 0.5, 3].entries()) {
      const delta = randomFlat(5000, 10 + k, 0.5);
      const u = privateUpdate(inputFor(delta, { clipNorm: c }));
      assert.equal(u.clipped, true);
      assert.ok(Math.abs(u.norm - l2Norm(delta)) < 1e-9 * u.norm);
      const after = l2Norm(u.values);
      assert.ok(after <= c, `norm ${after} > C ${c}`);
      assert.ok(after >= c * (1 - 2 * CLIP_TOLERANCE), `clipped far under C: ${after} vs ${c}`);
      assert.ok(withinClipBound(after, c));
      // the direction is kept
      const ratio = u.values[0] / delta[0];
      u.values.forEach((v, i) => assert.ok(Math.abs(v - ratio * delta[i]) < 1e-6, `value ${i}`));
    }
    const small = randomFlat(100, 3, 1e-3);
    const u = privateUpdate(inputFor(small, { clipNorm: 1 }));
    assert.equal(u.clipped, false);
    u.values.forEach((v, i) => assert.ok(Math.abs(v - small[i]) < 1e-7, `value ${i}`)); // local − global in float32
    assert.equal(withinClipBound(1 + 2 * CLIP_TOLERANCE, 1), false);
    assert.equal(withinClipBound(1.05, 1, 0.1), true);
  });

  it('adds device noise of exactly the requested standard deviation, after clipping', () => {
    const n = 200_000;
    for (const std of [0.02, 0.7]) {
      const delta = randomFlat(n, 5, 0.01);
      const c = 0.5;
      const clippedOnly = privateUpdate(inputFor(delta, { clipNorm: c }, 2)).values;
      const noised = privateUpdate(inputFor(delta, { clipNorm: c, deviceNoiseStd: std }, 2)).values;
      const noise = Float64Array.from(noised, (v, i) => v - clippedOnly[i]);
      const s = stats(noise);
      // the sample std of n normals has relative standard error 1/√(2n) ≈ 0.0016
      assert.ok(Math.abs(s.std / std - 1) < 0.01, `noise std ${s.std} vs ${std}`);
      assert.ok(Math.abs(s.mean) < (5 * std) / Math.sqrt(n), `noise mean ${s.mean}`);
    }
  });

  it('FFA-LoRA packs only the B blocks of the program layout', () => {
    const ffa = { ...LORA, freezeA: true };
    const layout = updateLayout(CONFIG, ffa);
    const { segments, length: total } = flatLayout(CONFIG, ffa);
    const bValues = segments.reduce((n, s) => n + s.outDim * ffa.rank, 0);
    assert.equal(layout.total, total);
    assert.equal(layout.length, bValues);
    const global = randomFlat(total, 1);
    const local = Float32Array.from(global, (v, i) => v + (i + 1) * 1e-3); // A moves too: it must not travel
    const packed = updateDelta(local, global, layout);
    const want = segments.flatMap((s) => Array.from({ length: s.outDim * ffa.rank }, (_, j) => Math.fround(local[s.bOffset + j] - global[s.bOffset + j])));
    assert.deepEqual(Array.from(packed), want);
    const built = buildUpdate({ ...inputFor(new Float32Array(total), {}), local, global, layout });
    assert.ok(built.encoding === 'f32');
    assert.equal(built.plaintext.length, 4 * bValues);
  });

  it('a smaller trained rank goes out in the program layout, zeros in the components it lacks', () => {
    const layout = updateLayout(CONFIG, LORA, 2);
    const low = flatLayout(CONFIG, { ...LORA, rank: 2 });
    const high = flatLayout(CONFIG, LORA);
    const global = randomFlat(low.length, 7);
    const local = Float32Array.from(global, (v, i) => v + 1 + i);
    const d = updateDelta(local, global, layout);
    assert.equal(d.length, high.length);
    const s = high.segments[1];
    const l = low.segments[1];
    // Aᵀ row 3: two trained components, two zeros; Bᵀ: two trained rows, then zeros
    assert.deepEqual(Array.from(d.subarray(s.aOffset + 3 * 4, s.aOffset + 4 * 4)), [1 + l.aOffset + 6, 1 + l.aOffset + 7, 0, 0].map(Math.fround));
    assert.deepEqual(Array.from(d.subarray(s.bOffset, s.bOffset + 2 * s.outDim)), Array.from({ length: 2 * s.outDim }, (_, j) => Math.fround(local[l.bOffset + j] - global[l.bOffset + j])));
    assert.ok(d.subarray(s.bOffset + 2 * s.outDim, s.bOffset + 4 * s.outDim).every((v) => v === 0));
    assert.throws(() => updateLayout(CONFIG, LORA, 5), /trainedRank must be an integer in \[1, 4\]/);
  });

  it('every encoding round-trips through the coordinator decoder; masked stops before quantizing', () => {
    const delta = randomFlat(3 * UPDATE_QUANT_BLOCK + 17, 9, 0.2);
    const input = inputFor(delta, { clipNorm: 1, deviceNoiseStd: 0.01 });
    const expected = privateUpdate({ ...input, rngs: devicePrivacyRngs(seededRng(4)) }).values;
    for (const encoding of ['f32', 'q8', 'q4', 'masked'] as const) {
      const built = buildUpdate({ ...input, work: { ...input.work, encoding }, rngs: devicePrivacyRngs(seededRng(4)) });
      assert.equal(built.encoding, encoding);
      assert.equal(built.numExamples, 12);
      assert.equal(built.clipped, true);
      if (built.encoding === 'masked') {
        assert.deepEqual(built.values, expected);
        continue;
      }
      const decoded = decodeUpdate(encoding, built.plaintext, delta.length);
      if (encoding === 'f32') assert.deepEqual(decoded.update, expected);
      let err = 0;
      decoded.update.forEach((v, i) => (err += (v - expected[i]) ** 2));
      assert.ok(Math.sqrt(err) <= decoded.slack, `${encoding}: error ${Math.sqrt(err)} > slack ${decoded.slack}`);
      // the coordinator's clip check passes with the decoder's slack
      assert.ok(withinClipBound(l2Norm(decoded.update), 1, decoded.slack + 6 * 0.01 * Math.sqrt(delta.length)));
    }
  });

  it('quantization is unbiased: the mean of many q4 builds converges to the private update', () => {
    const delta = randomFlat(600, 12, 0.05);
    const input = inputFor(delta, { encoding: 'q4' });
    const draws = 400;
    const sum = new Float64Array(delta.length);
    let slack = 0;
    for (let k = 0; k < draws; k++) {
      const built = buildUpdate({ ...input, rngs: devicePrivacyRngs(seededRng(100 + k)) });
      assert.ok(built.encoding === 'q4');
      const d = decodeUpdate('q4', built.plaintext, delta.length);
      slack = d.slack;
      d.update.forEach((v, i) => (sum[i] += v / draws));
    }
    const step = slack / Math.sqrt(delta.length); // rms quantization step
    let worst = 0;
    sum.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - (input.local[i] - input.global[i])))));
    // one draw errs by < its step s; the mean of n draws has std ≤ s/(2√n)
    assert.ok(worst < (5 * step) / (2 * Math.sqrt(draws)) + 1e-6, `worst mean error ${worst}, step ${step}`);
  });

  it("a device's privacy randomness is fresh on every run; only an injected generator reproduces it", () => {
    const delta = randomFlat(2000, 21, 0.01);
    const input = inputFor(delta, { clipNorm: 0.5, deviceNoiseStd: 0.1, encoding: 'q8' });
    const plain = (rngs = devicePrivacyRngs()) => {
      const b = buildUpdate({ ...input, rngs });
      assert.ok(b.encoding === 'q8');
      return Array.from(b.plaintext);
    };
    // same inputs — what the same seed trains — yet different noise and rounding each time
    assert.notDeepEqual(plain(), plain());
    const noise = () => privateUpdate({ ...input, rngs: devicePrivacyRngs() }).values;
    const [a, b] = [noise(), noise()];
    assert.ok(a.filter((v, i) => v !== b[i]).length > delta.length * 0.99);
    assert.deepEqual(plain(devicePrivacyRngs(seededRng(5))), plain(devicePrivacyRngs(seededRng(5))));
  });

  it('misuse throws, naming the function and argument', () => {
    const input = inputFor(new Float32Array(8), {});
    assert.throws(() => buildUpdate({ ...input, local: new Float32Array(7) }), /updateDelta: local has 7 values, global 8/);
    assert.throws(() => buildUpdate({ ...input, work: { ...input.work, clipNorm: -1 } }), /work.clipNorm must be a finite number ≥ 0/);
    assert.throws(() => buildUpdate({ ...input, work: { ...input.work, deviceNoiseStd: Number.NaN } }), /work.deviceNoiseStd/);
    assert.throws(() => buildUpdate({ ...input, work: { ...input.work, encoding: 'bf16' as 'f32' } }), /work.encoding must be one of/);
    assert.throws(() => buildUpdate({ ...input, layout: { ...input.layout, total: 9, length: 9 } }), /the layout's program adapter 9/);
    assert.throws(() => encodePrivateUpdate({ ...input, trained: { steps: 1, batchSize: 0 } }, privateUpdate(input)), /trained.batchSize must be a positive integer/);
    assert.throws(() => buildUpdate({ ...input, global: [0] as unknown as Float32Array }), TypeError);
  });
});
