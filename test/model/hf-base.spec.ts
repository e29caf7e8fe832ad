import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  encodeSafetensors, FrozenBase, fromHalf, hfBaseInfo, initBackend, llama3RopeFactors, loadHfBase, ModelFormatError, parseSafetensors,
  permuteHalvesToPairs, permutePairsToHalves, randomBase, readHfBase, toHalf, writeHfModel,
  type LlamaConfig, type LlamaWeights, type MatrixRef, type SafetensorsDtype,
} from '../../model/index.js';

const small = { dim: 64, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 80, seqLen: 64, normEps: 1e-5 };
const SCALING = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 64 };
const LLAMA: LlamaConfig = { ...small, arch: 'llama', sharedClassifier: false, ropeTheta: 500000, ropeStyle: 'interleaved', ropeFreqFactors: llama3RopeFactors(16, 500000, SCALING).map(Math.fround) };
const LLAMA_BIAS: LlamaConfig = { ...small, arch: 'llama', sharedClassifier: true, ropeTheta: 10000, ropeStyle: 'interleaved', attnBias: true };
const QWEN2: LlamaConfig = { ...small, arch: 'qwen2', sharedClassifier: true, ropeTheta: 1e6, ropeStyle: 'neox', attnBias: true };
const QWEN3: LlamaConfig = { ...small, arch: 'qwen3', headDim: 32, sharedClassifier: false, ropeTheta: 1e6, ropeStyle: 'neox', qkNorm: true };

let root: string;
let n = 0;
const fresh = (): string => join(root, `m${n++}`);
const bits = (a: Float32Array): Uint32Array => new Uint32Array(Float32Array.from(a).buffer);

/** Every float array of the weights, named, in a fixed order. */
function arrays(w: LlamaWeights): [string, Float32Array][] {
  const out: [string, Float32Array][] = [['tokenEmbedding', w.tokenEmbedding], ['rmsFinal', w.rmsFinal], ['classifier', w.classifier]];
  w.layers.forEach((l, i) => {
    for (const [k, v] of Object.entries(l)) if (v instanceof Float32Array) out.push([`${i}.${k}`, v]);
  });
  return out.sort(([a], [b]) => (a < b ? -1 : 1));
}

/** bfloat16 rounding written independently: the nearer of the two neighbours that keep 16 bits, ties to even. */
function bf16Round(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0];
  const lo = u & 0xffff0000;
  const hi = (lo + 0x10000) >>> 0;
  const val = (b: number): number => new Float32Array(Uint32Array.of(b).buffer)[0];
  const dl = Math.abs(x - val(lo));
  const dh = Math.abs(val(hi) - x);
  if (dl !== dh) return dl < dh ? val(lo) : val(hi);
  return (lo >>> 16) % 2 === 0 ? val(lo) : val(hi);
}

const rounders: Record<SafetensorsDtype, (x: number) => number> = { F32: (x) => x, F16: (x) => fromHalf(toHalf(x)), BF16: bf16Round };

/** The directory identity as the JSDoc specifies it, computed here from the files on disk. */
function specIdentity(dir: string): string {
  const named = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'model.safetensors', 'model.safetensors.index.json'];
  const files = readdirSync(dir).filter((f) => named.includes(f) || f.endsWith('.safetensors')).sort();
  const listing = files.map((f) => `${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}  ${f}\n`).join('');
  return createHash('sha256').update(listing).digest('hex');
}

/** A ModelFormatError whose message names `file` and matches `re`. */
const formatError = (file: string, re: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof ModelFormatError, `expected ModelFormatError, got ${String(e)}`);
  assert.ok(e.message.includes(file), `"${e.message}" does not name ${file}`);
  assert.match(e.message, re);
  return true;
};

/** Rewrite a safetensors file's tensors through `edit`. */
function rewrite(path: string, edit: (ts: ReturnType<typeof parseSafetensors>['tensors']) => ReturnType<typeof parseSafetensors>['tensors']): void {
  const f = parseSafetensors(new Uint8Array(readFileSync(path)), path);
  writeFileSync(path, encodeSafetensors(edit(f.tensors), f.metadata));
}

describe('model/hf-base (Hugging Face checkpoint directories)', () => {
  before(async () => {
    await initBackend();
    root = mkdtempSync(join(tmpdir(), 'fedtune-hf-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('permutes q/k rows exactly as convert_hf_to_gguf (reshape(n_head, 2, hs/2, cols).swapaxes(1, 2)), and back', () => {
    const heads = 3;
    const hs = 8;
    const cols = 5;
    const hf = Float32Array.from({ length: heads * hs * cols }, (_, i) => i);
    // numpy: out[h, j, s, c] = in[h, s, j, c] for in of shape (heads, 2, hs/2, cols)
    const want = new Float32Array(hf.length);
    for (let h = 0; h < heads; h++) for (let j = 0; j < hs / 2; j++) for (let s = 0; s < 2; s++) for (let c = 0; c < cols; c++) {
      want[((h * (hs / 2) + j) * 2 + s) * cols + c] = hf[((h * 2 + s) * (hs / 2) + j) * cols + c];
    }
    assert.deepEqual(permuteHalvesToPairs(hf, heads, cols), want);
    assert.deepEqual(permutePairsToHalves(permuteHalvesToPairs(hf, heads, cols), heads, cols), hf);
    assert.deepEqual(permuteHalvesToPairs(permutePairsToHalves(hf, heads, cols), heads, cols), hf);
  });

  for (const [label, config] of [['llama (llama3 rope, untied)', LLAMA], ['llama with q/k/v biases (tied)', LLAMA_BIAS], ['qwen2 (tied)', QWEN2], ['qwen3 (headDim 32, untied)', QWEN3]] as const) {
    it(`${label}: write → read is bit-identical at F32 (1 and 3 shards) and the rounded values at F16 / BF16`, () => {
      const model = randomBase(config, 7, { randomVectors: true });
      const ropeScaling = config.ropeFreqFactors ? SCALING : undefined;
      for (const [dtype, shards] of [['F32', 1], ['F32', 3], ['F16', 1], ['BF16', 3]] as const) {
        const dir = fresh();
        writeHfModel(dir, model, { dtype, shards, ropeScaling });
        assert.equal(readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length, shards);
        const back = readHfBase(dir);
        assert.deepEqual(back.weights.config, config);
        assert.equal(back.weights.classifier === back.weights.tokenEmbedding, config.sharedClassifier);
        const got = arrays(back.weights);
        const want = arrays(model.weights);
        assert.deepEqual(got.map(([k]) => k), want.map(([k]) => k));
        got.forEach(([k, a], i) => assert.deepEqual(bits(a), bits(want[i][1].map(rounders[dtype])), `${dtype} ${k}`));
        if (dtype === 'F32') assert.equal(back.sha256, hfBaseInfo(dir).sha256);
      }
    });
  }

  it('stores a llama model in halves order on disk (what transformers rotates), qwen as held', () => {
    for (const config of [LLAMA, QWEN2]) {
      const model = randomBase(config, 1);
      const dir = fresh();
      writeHfModel(dir, model, { dtype: 'F32', ropeScaling: config.ropeFreqFactors ? SCALING : undefined });
      const onDisk = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'model.safetensors'))));
      const raw = (name: string): Float32Array => new Float32Array(onDisk.tensors.find((t) => t.name === name)!.data.slice().buffer);
      const q = raw('model.layers.1.self_attn.q_proj.weight');
      const k = raw('model.layers.1.self_attn.k_proj.weight');
      const { wq, wk } = model.weights.layers[1];
      const llama = config.arch === 'llama';
      assert.deepEqual(llama ? permuteHalvesToPairs(q, 4, 64) : q, wq);
      assert.deepEqual(llama ? permuteHalvesToPairs(k, 2, 64) : k, wk);
      if (llama) assert.notDeepEqual(q, wq);
      const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg.model_type, config.arch);
      if (llama) assert.deepEqual(cfg.rope_scaling, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 });
    }
  });

  it('identity: the documented listing hash, stable across writes, changed by one weight byte or a tokenizer file', () => {
    const model = randomBase(QWEN3, 3, { randomVectors: true });
    const a = fresh();
    const b = fresh();
    writeHfModel(a, model, { dtype: 'BF16', shards: 3, tokenizerJson: { model: { type: 'BPE' } }, tokenizerConfig: { eos_token: '<|im_end|>' } });
    writeHfModel(b, model, { dtype: 'BF16', shards: 3, tokenizerJson: { model: { type: 'BPE' } }, tokenizerConfig: { eos_token: '<|im_end|>' } });
    const info = hfBaseInfo(a);
    assert.equal(info.sha256, specIdentity(a));
    assert.deepEqual(info.files, ['config.json', 'model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors', 'model.safetensors.index.json', 'tokenizer.json', 'tokenizer_config.json']);
    assert.equal(hfBaseInfo(b).sha256, info.sha256);
    assert.equal(readHfBase(a).sha256, info.sha256);
    const shard = join(b, 'model-00002-of-00003.safetensors');
    const bytes = readFileSync(shard);
    bytes[bytes.length - 3] ^= 1;
    writeFileSync(shard, bytes);
    const changed = readHfBase(b).sha256;
    assert.notEqual(changed, info.sha256);
    assert.equal(changed, specIdentity(b));
    writeFileSync(join(a, 'generation_config.json'), '{}\n');
    assert.notEqual(hfBaseInfo(a).sha256, info.sha256);
  });

  it('loadHfBase streams int8 / int4 equal to quantizing the float32 weights, matrix by matrix, and leaks no tensor', () => {
    const before = tf.memory().numTensors;
    for (const config of [LLAMA, QWEN2]) {
      const dir = fresh();
      writeHfModel(dir, randomBase(config, 5, { randomVectors: true }), { dtype: 'BF16', shards: 2, ropeScaling: config.ropeFreqFactors ? SCALING : undefined });
      const fp32 = readHfBase(dir);
      for (const quant of ['int8', 'int4'] as const) {
        const streamed = loadHfBase(dir, quant, { uncalibrated: true });
        const direct = new FrozenBase(fp32, quant);
        assert.equal(streamed.sha256, fp32.sha256);
        const refs: MatrixRef[] = ['classifier', ...fp32.weights.layers.flatMap((_, layer) => (['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const).map((name) => ({ layer, name })))];
        for (const ref of refs) {
          const [s, d] = [streamed.weight(ref), direct.weight(ref)];
          assert.deepEqual(s.dataSync(), d.dataSync(), JSON.stringify(ref));
          tf.dispose([s, d]);
        }
        // the (un)shared embedding too, and the quantization really is int8 / int4 of the float values
        const ids = Int32Array.of(0, 17, 79);
        const [es, ed] = [streamed.embed(ids), direct.embed(ids)];
        assert.deepEqual(es.dataSync(), ed.dataSync());
        tf.dispose([es, ed]);
        assert.equal(streamed.memory().bytes, direct.memory().bytes);
        streamed.dispose();
        direct.dispose();
      }
      const none = loadHfBase(dir, 'none');
      const wq = none.weight({ layer: 1, name: 'wq' });
      assert.deepEqual(wq.dataSync(), fp32.weights.layers[1].wq);
      wq.dispose();
      none.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
  });

  it('refuses every malformed directory with a ModelFormatError naming the file, allocating nothing', () => {
    const before = tf.memory().numTensors;
    const model = randomBase(LLAMA_BIAS, 2);
    const untied = randomBase(QWEN3, 2);
    const both = (dir: string, file: string, re: RegExp): void => {
      assert.throws(() => readHfBase(dir), formatError(file, re));
      assert.throws(() => loadHfBase(dir, 'int8'), formatError(file, re));
      assert.equal(tf.memory().numTensors, before);
    };
    const good = (m = model, opts: { shards?: number } = {}): string => {
      const dir = fresh();
      writeHfModel(dir, m, { dtype: 'F32', ...opts });
      return dir;
    };
    const st = (dir: string): string => join(dir, 'model.safetensors');
    const cfg = (dir: string): string => join(dir, 'config.json');
    // not a directory, no config.json, bad JSON, unsupported model
    let d = good();
    both(st(d), st(d), /not a directory/);
    both(join(root, 'nowhere'), join(root, 'nowhere'), /not a directory/);
    unlinkSync(cfg(d));
    both(d, d, /no config\.json/);
    writeFileSync(cfg(d), '{"model_type": ');
    both(d, cfg(d), /not valid JSON/);
    writeFileSync(cfg(d), JSON.stringify({ model_type: 'gpt2' }));
    both(d, cfg(d), /"gpt2"/);
    // unsupported dtype (same byte size, so only the dtype is wrong)
    d = good();
    const bytes = readFileSync(st(d));
    const at = bytes.indexOf('"dtype":"F32"');
    bytes.write('"dtype":"I32"', at, 'latin1');
    writeFileSync(st(d), bytes);
    both(d, st(d), /dtype I32; only F32, F16 and BF16/);
    // header length past the end, truncated data, overlapping tensors
    const head = new Uint8Array(16);
    new DataView(head.buffer).setBigUint64(0, 1_000_000n, true);
    writeFileSync(st(d), head);
    both(d, st(d), /header length 1000000 runs past the end/);
    d = good();
    writeFileSync(st(d), readFileSync(st(d)).subarray(0, -100));
    both(d, st(d), /outside its \d+ data bytes/);
    const json = Buffer.from(JSON.stringify({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }).padEnd(120));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(st(d), Buffer.concat([len, json, Buffer.alloc(24)]));
    both(d, st(d), /"a" and "b" overlap/);
    // a missing tensor, a missing untied head, a shape contradicting config.json
    d = good();
    rewrite(st(d), (ts) => ts.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
    both(d, st(d), /no tensor "model\.layers\.1\.mlp\.up_proj\.weight"/);
    d = good(untied);
    rewrite(st(d), (ts) => ts.filter((t) => t.name !== 'lm_head.weight'));
    both(d, st(d), /no tensor "lm_head\.weight"/);
    d = good();
    writeFileSync(cfg(d), readFileSync(cfg(d), 'utf8').replace('"intermediate_size": 96', '"intermediate_size": 100'));
    both(d, st(d), /"model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[96, 64\], but config\.json implies \[100, 64\]/);
    // an index naming a missing shard
    d = good(untied, { shards: 3 });
    unlinkSync(join(d, 'model-00002-of-00003.safetensors'));
    both(d, join(d, 'model.safetensors.index.json'), /names shard "model-00002-of-00003\.safetensors", which is missing/);
    // transformers' o_proj bias (llama attention_bias): written as zeros, read back as the same model; non-zero is refused
    d = good();
    const oName = 'model.layers.1.self_attn.o_proj.bias';
    assert.deepEqual(parseSafetensors(new Uint8Array(readFileSync(st(d)))).tensors.find((t) => t.name === oName)?.data, new Uint8Array(64 * 4));
    assert.deepEqual(readHfBase(d).weights.layers[1].wo, model.weights.layers[1].wo);
    rewrite(st(d), (ts) => ts.map((t) => (t.name === oName ? { ...t, data: new Uint8Array(new Float32Array(64).fill(0.5).buffer) } : t)));
    both(d, st(d), /non-zero o_proj bias/);
    assert.equal(tf.memory().numTensors, before);
  });

  it('refuses a weight that is NaN or infinite (IEEE 754: exponent bits all ones) with a ModelFormatError naming the shard', () => {
    const poison = (dtype: 'F32' | 'BF16', name: string, index: number, bitsOf: (dv: DataView, at: number) => void): string => {
      const dir = fresh();
      writeHfModel(dir, randomBase(QWEN2, 3), { dtype });
      rewrite(join(dir, 'model.safetensors'), (ts) => ts.map((t) => {
        if (t.name !== name) return t;
        const data = Uint8Array.from(t.data);
        bitsOf(new DataView(data.buffer), index);
        return { ...t, data };
      }));
      return dir;
    };
    const f32 = poison('F32', 'model.layers.0.self_attn.q_proj.weight', 5, (dv, i) => dv.setFloat32(4 * i, Number.NaN, true));
    assert.throws(() => readHfBase(f32), formatError(join(f32, 'model.safetensors'), /tensor "model\.layers\.0\.self_attn\.q_proj\.weight" \(F32\) has a NaN or infinite value at index 5/));
    const bf16 = poison('BF16', 'model.norm.weight', 0, (dv, i) => dv.setUint16(2 * i, 0xff80, true)); // bf16 −Inf
    assert.throws(() => loadHfBase(bf16, 'int8'), formatError(join(bf16, 'model.safetensors'), /"model\.norm\.weight" \(BF16\) has a NaN or infinite value at index 0/));
  });
});
