import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  dequantize,
  FrozenBase,
  generate,
  GGML_TYPE,
  ggufTensorF32,
  ggufTensorQuantized,
  ggufToBase,
  ggufTokenizer,
  MATRIX_NAMES,
  ModelFormatError,
  parseGguf,
  quantizeQ4,
  quantizeQ8,
  readGgufBase,
  toHalf,
  Tokenizer,
  type QuantizedArray,
} from '../../model/index.js';
import { MODEL, realModel } from '../helpers.js';

type Meta = { key: string; type: 'u32' | 'f32' | 'str' | 'u64' | 'strs' | 'f32s'; value: unknown };
interface RawTensor {
  name: string;
  dims: number[];
  type: number;
  data: Uint8Array;
}

/** A minimal GGUF v3 writer for tests (32-byte alignment). */
function writeGguf(meta: Meta[], tensors: RawTensor[]): Uint8Array {
  const parts: Buffer[] = [];
  const u32 = (v: number): void => void parts.push(Buffer.from(new Uint32Array([v]).buffer));
  const u64 = (v: number): void => void parts.push(Buffer.from(new BigUint64Array([BigInt(v)]).buffer));
  const f32 = (v: number): void => void parts.push(Buffer.from(new Float32Array([v]).buffer));
  const str = (s: string): void => {
    const b = Buffer.from(s, 'utf8');
    u64(b.length);
    parts.push(b);
  };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(tensors.length);
  u64(meta.length);
  for (const m of meta) {
    str(m.key);
    if (m.type === 'u32') (u32(4), u32(m.value as number));
    else if (m.type === 'u64') (u32(10), u64(m.value as number));
    else if (m.type === 'f32') (u32(6), f32(m.value as number));
    else if (m.type === 'str') (u32(8), str(m.value as string));
    else if (m.type === 'strs') (u32(9), u32(8), u64((m.value as string[]).length), (m.value as string[]).forEach(str));
    else (u32(9), u32(6), u64((m.value as number[]).length), (m.value as number[]).forEach(f32));
  }
  const pad = (n: number): number => Math.ceil(n / 32) * 32;
  let off = 0;
  const offsets = tensors.map((t) => {
    const o = off;
    off = pad(off + t.data.length);
    return o;
  });
  tensors.forEach((t, i) => {
    str(t.name);
    u32(t.dims.length);
    t.dims.forEach(u64);
    u32(t.type);
    u64(offsets[i]);
  });
  const head = Buffer.concat(parts);
  const out = new Uint8Array(pad(head.length) + off);
  out.set(head);
  tensors.forEach((t, i) => out.set(t.data, pad(head.length) + offsets[i]));
  return out;
}

/** GGUF block bytes of a fedtune quantized array (block 32): fp16 scale, then the block's data. */
function ggufBlocks(q: QuantizedArray): Uint8Array {
  const per = q.kind === 'q8_0' ? 32 : 16;
  const raw = new Uint8Array(q.data.buffer, q.data.byteOffset, q.data.byteLength);
  const out = Buffer.alloc(q.scales.length * (2 + per));
  for (let b = 0; b < q.scales.length; b++) {
    out.writeUInt16LE(q.scales[b], b * (2 + per));
    out.set(raw.subarray(b * per, (b + 1) * per), b * (2 + per) + 2);
  }
  return out;
}

function randomValues(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s / 2 ** 31 - 0.5) * 3;
  });
}

function synthetic(): { bytes: Uint8Array; x8: Float32Array; x4: Float32Array; xf: Float32Array; q8: QuantizedArray; q4: QuantizedArray } {
  const x8 = randomValues(64 * 3, 1);
  const x4 = randomValues(32 * 5, 2);
  const xf = randomValues(40, 3);
  const q8 = quantizeQ8(x8, 32);
  const q4 = quantizeQ4(x4, 32);
  const f16 = Buffer.alloc(xf.length * 2);
  xf.forEach((v, i) => f16.writeUInt16LE(toHalf(v), 2 * i));
  const bytes = writeGguf(
    [
      { key: 'general.architecture', type: 'str', value: 'test' },
      { key: 'some.count', type: 'u64', value: 7 },
      { key: 'some.names', type: 'strs', value: ['a', '▁b', ''] },
      { key: 'some.floats', type: 'f32s', value: [0.5, -2] },
    ],
    [
      { name: 'q8', dims: [64, 3], type: GGML_TYPE.Q8_0, data: ggufBlocks(q8) },
      { name: 'q4', dims: [32, 5], type: GGML_TYPE.Q4_0, data: ggufBlocks(q4) },
      { name: 'f16', dims: [8, 5], type: GGML_TYPE.F16, data: f16 },
      { name: 'f32', dims: [40], type: GGML_TYPE.F32, data: new Uint8Array(xf.buffer) },
    ],
  );
  return { bytes, x8, x4, xf, q8, q4 };
}

describe('model/gguf', () => {
  it('parses the stories260K GGUF header, metadata and tensor directory', () => {
    const f = parseGguf(readFileSync(MODEL.gguf), MODEL.gguf);
    assert.equal(f.version, 3);
    assert.equal(f.metadata.size, 19);
    assert.equal(f.tensors.length, 48);
    assert.equal(f.alignment, 32);
    assert.equal(f.metadata.get('general.architecture'), 'llama');
    assert.equal((f.metadata.get('tokenizer.ggml.tokens') as string[]).length, 512);
    assert.ok(f.tensors.every((t) => t.type === GGML_TYPE.F32));
    const q = f.tensors.find((t) => t.name === 'blk.0.attn_q.weight');
    assert.deepEqual(q?.dims, [64, 64]);
    assert.deepEqual(f.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')?.dims, [172, 64]);
  });

  it('gives weights bit-identical to stories260K.bin (no RoPE permutation) and the same config', async () => {
    const { base } = await realModel();
    const g = readGgufBase(MODEL.gguf);
    const bin = base.weights;
    const w = g.weights;
    // llama.context_length is 2048 in the GGUF; the llama2.c header says 512. Everything else agrees.
    assert.deepEqual({ ...w.config, seqLen: 0 }, { ...bin.config, arch: 'llama', ropeStyle: 'interleaved', seqLen: 0 });
    assert.equal(w.config.seqLen, 2048);
    assert.equal(w.config.normEps, 1e-5);
    assert.equal(w.config.sharedClassifier, true);
    assert.equal(w.classifier, w.tokenEmbedding, 'the bit-identical output head shares the embedding array');
    assert.deepEqual(w.tokenEmbedding, bin.tokenEmbedding);
    assert.deepEqual(w.rmsFinal, bin.rmsFinal);
    assert.deepEqual(w.classifier, bin.classifier);
    assert.equal(w.layers.length, bin.layers.length);
    w.layers.forEach((lw, l) => {
      for (const name of [...MATRIX_NAMES, 'rmsAtt', 'rmsFfn'] as const) assert.deepEqual(lw[name], bin.layers[l][name], `layer ${l} ${name}`);
    });
    assert.equal(g.sha256, createHash('sha256').update(readFileSync(MODEL.gguf)).digest('hex'));
    assert.equal(g.sha256, '270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d');
  });

  it('reads a tokenizer equal to tok512.bin that encodes the golden prompt', async () => {
    const { tokenizer, golden } = await realModel();
    const tok = ggufTokenizer(parseGguf(readFileSync(MODEL.gguf), MODEL.gguf));
    assert.ok(tok instanceof Tokenizer);
    assert.equal(tok.vocabSize, tokenizer.vocabSize);
    tok.pieces.forEach((p, i) => assert.deepEqual(Buffer.from(p), Buffer.from(tokenizer.pieces[i]), `piece ${i}`));
    assert.deepEqual(tok.scores, tokenizer.scores);
    assert.deepEqual([...tok.encode(golden.prompt)], golden.prompt_ids);
    const text = 'Lily saw a big dog.\nIt was "happy" — café!';
    assert.deepEqual(tok.encode(text), tokenizer.encode(text));
    assert.equal(tok.decode(tok.encode(text)), text);
  });

  it('reproduces the golden greedy continuation from the GGUF base', async () => {
    const { golden } = await realModel();
    const bytes = readFileSync(MODEL.gguf);
    const parsed = parseGguf(bytes, MODEL.gguf);
    const base = new FrozenBase(ggufToBase(parsed), 'none');
    try {
      const g = generate(base, ggufTokenizer(parsed), golden.prompt, { maxTokens: golden.greedy_ids.length });
      assert.deepEqual([...g.promptIds], golden.prompt_ids);
      assert.deepEqual(g.ids, golden.greedy_ids);
      assert.equal(g.text, golden.greedy_text);
    } finally {
      base.dispose();
    }
  });

  it('decodes Q8_0, Q4_0, F16 and F32 tensors and keeps Q8_0/Q4_0 quantized without loss', () => {
    const { bytes, xf, q8, q4 } = synthetic();
    const f = parseGguf(bytes, 'synthetic.gguf');
    assert.equal(f.metadata.get('some.count'), 7n);
    assert.deepEqual(f.metadata.get('some.names'), ['a', '▁b', '']);
    assert.deepEqual(f.metadata.get('some.floats'), [0.5, -2]);
    const t = (name: string) => f.tensors.find((x) => x.name === name)!;
    assert.deepEqual(ggufTensorF32(f, t('q8')), dequantize(q8));
    assert.deepEqual(ggufTensorF32(f, t('q4')), dequantize(q4));
    assert.deepEqual(ggufTensorF32(f, t('f32')), xf);
    const f16 = ggufTensorF32(f, t('f16'));
    f16.forEach((v, i) => assert.ok(Math.abs(v - xf[i]) <= Math.abs(xf[i]) * 2 ** -11 + 1e-7, `f16 ${i}`));
    for (const [name, q] of [['q8', q8], ['q4', q4]] as const) {
      const r = ggufTensorQuantized(f, t(name));
      assert.equal(r.kind, q.kind);
      assert.equal(r.length, q.length);
      assert.equal(r.block, 32);
      assert.deepEqual(r.scales, q.scales);
      assert.deepEqual(r.data, q.data);
      assert.deepEqual(dequantize(r), dequantize(q));
    }
    assert.throws(() => ggufTensorQuantized(f, t('f32')), ModelFormatError);
    assert.throws(() => ggufToBase(f), (e: Error) => e instanceof ModelFormatError && /synthetic.gguf holds architecture "test"/.test(e.message));
  });

  it('refuses truncated files and bad magic with ModelFormatError', () => {
    const real = readFileSync(MODEL.gguf);
    for (const bytes of [real, synthetic().bytes]) {
      const cuts = [0, 3, 4, 7, 10, 20, 30, 100, 1000, 5000, Math.floor(bytes.length / 2), bytes.length - 1];
      for (const cut of cuts.filter((c) => c < bytes.length)) {
        assert.throws(
          () => parseGguf(bytes.subarray(0, cut), 'cut.gguf'),
          (e: Error) => e instanceof ModelFormatError && /cut\.gguf/.test(e.message),
          `cut at ${cut}`,
        );
      }
    }
    const junk = Buffer.from(real);
    junk.write('GGML', 0);
    assert.throws(() => parseGguf(junk, 'junk.gguf'), /junk.gguf is not a readable GGUF file: it does not start with the magic "GGUF"/);
    const huge = Buffer.from(real.subarray(0, 64));
    huge.writeBigUInt64LE(2n ** 40n, 8); // tensor count far beyond the file
    assert.throws(() => parseGguf(huge, 'huge.gguf'), (e: Error) => e instanceof ModelFormatError && /tensor count/.test(e.message));
    const v1 = Buffer.from(real);
    v1.writeUInt32LE(1, 4);
    assert.throws(() => parseGguf(v1, 'v1.gguf'), /version 1 is not supported/);
    // a corrupt string length inside the metadata
    const corrupt = Buffer.from(real);
    corrupt.writeBigUInt64LE(2n ** 50n, 24);
    assert.throws(() => parseGguf(corrupt, 'corrupt.gguf'), ModelFormatError);
  });

  it('refuses a llama GGUF with a missing tensor or a wrong shape', () => {
    const f = parseGguf(readFileSync(MODEL.gguf), 'x.gguf');
    const without = { ...f, tensors: f.tensors.filter((t) => t.name !== 'blk.2.ffn_up.weight') };
    assert.throws(() => ggufToBase(without), /x.gguf lacks the tensor blk.2.ffn_up.weight/);
    const reshaped = { ...f, tensors: f.tensors.map((t) => (t.name === 'blk.1.attn_k.weight' ? { ...t, dims: [32, 64] } : t)) };
    assert.throws(() => ggufToBase(reshaped), /x.gguf: tensor blk.1.attn_k.weight has dims \[32, 64\] but the config implies \[64, 32\]/);
  });
});
