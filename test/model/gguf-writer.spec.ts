import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ggufTensorF32, parseGguf, type GgufFile, type GgufValue } from '../../model/gguf.js';
import {
  encodeGguf, f16Bytes, f32Bytes, ggmlBytes, GGUF_TENSOR_TYPE, GGUF_VALUE_TYPE, q8_0Bytes, writeGguf,
  type GgufMetadataEntry, type GgufTensorInput,
} from '../../model/gguf-writer.js';
import { ggmlDecode } from '../../model/ggml-types.js';

const STORIES = fileURLToPath(new URL('../../../../shared/models/stories260K/stories260K.gguf', import.meta.url));
const typeName = (id: number): keyof typeof GGUF_VALUE_TYPE =>
  (Object.keys(GGUF_VALUE_TYPE) as (keyof typeof GGUF_VALUE_TYPE)[]).find((k) => GGUF_VALUE_TYPE[k] === id)!;
const tensorType = (id: number): keyof typeof GGUF_TENSOR_TYPE =>
  (Object.keys(GGUF_TENSOR_TYPE) as (keyof typeof GGUF_TENSOR_TYPE)[]).find((k) => GGUF_TENSOR_TYPE[k].id === id)!;

/** Everything the writer needs to reproduce a parsed file. */
function toInput(file: GgufFile): { metadata: GgufMetadataEntry[]; tensors: GgufTensorInput[] } {
  const metadata = [...file.metadata].map(([key, value]) => {
    const [t, ...chain] = file.metadataTypes!.get(key)!;
    return { key, type: typeName(t), elementType: chain.map(typeName), value };
  });
  const tensors = file.tensors.map((t) => {
    const l = GGUF_TENSOR_TYPE[tensorType(t.type)];
    const size = (t.dims.reduce((a, b) => a * b, 1) / l.values) * l.bytes;
    const start = file.dataOffset + t.offset;
    return { name: t.name, type: tensorType(t.type), shape: t.dims, data: file.bytes.subarray(start, start + size) };
  });
  return { metadata, tensors };
}
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('model/gguf-writer', () => {
  it("re-encodes llama.cpp's stories260K.gguf byte for byte", () => {
    const bytes = new Uint8Array(readFileSync(STORIES));
    const out = encodeGguf(toInput(parseGguf(bytes, STORIES)));
    assert.equal(out.byteLength, bytes.byteLength);
    assert.equal(sha(out), sha(bytes));
  });

  it('writeGguf streams the same bytes to a file', () => {
    const bytes = new Uint8Array(readFileSync(STORIES));
    const dir = mkdtempSync(join(tmpdir(), 'ggufw-'));
    try {
      writeGguf(join(dir, 'm.gguf'), toInput(parseGguf(bytes, STORIES)));
      assert.equal(sha(readFileSync(join(dir, 'm.gguf'))), sha(bytes));
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });

  it('refuses bad inputs, naming the function and argument', () => {
    const t = { name: 'w', type: 'F32' as const, shape: [4], data: new Uint8Array(16) };
    assert.throws(() => encodeGguf({ metadata: [], tensors: [{ ...t, shape: [5] }] }), /encodeGguf: tensor "w" shape/);
    assert.throws(() => encodeGguf({ metadata: [], tensors: [t, t] }), /encodeGguf: tensor "w" appears twice/);
    assert.throws(() => encodeGguf({ metadata: [], tensors: [{ ...t, name: 'x'.repeat(64) }] }), /longer than 63/);
    assert.throws(() => encodeGguf({ metadata: [], tensors: [], alignment: 24 }), /alignment 24/);
    assert.throws(() => encodeGguf({ metadata: [{ key: 'a', type: 'u8', value: 1 }, { key: 'a', type: 'u8', value: 2 }], tensors: [] }), /"a" appears twice/);
    assert.throws(() => encodeGguf({ metadata: [{ key: 'a', type: 'u8', value: 300 }], tensors: [] }), /not a valid u8/);
  });

  it('round-trips random metadata and tensors through the reader', () => {
    const scalar = fc.oneof(
      fc.record({ type: fc.constant('u8' as const), value: fc.integer({ min: 0, max: 255 }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('i16' as const), value: fc.integer({ min: -32768, max: 32767 }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('i32' as const), value: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('u64' as const), value: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('i64' as const), value: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('f32' as const), value: fc.float({ noNaN: true }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('f64' as const), value: fc.double({ noNaN: true }) as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('bool' as const), value: fc.boolean() as fc.Arbitrary<GgufValue> }),
      fc.record({ type: fc.constant('string' as const), value: fc.string() as fc.Arbitrary<GgufValue> }),
    );
    const entry = fc.oneof(
      scalar.map((s) => ({ ...s, elementType: [] as (keyof typeof GGUF_VALUE_TYPE)[] })),
      fc.array(fc.string(), { maxLength: 5 }).map((v) => ({ type: 'array' as const, elementType: ['string' as const], value: v as GgufValue })),
      fc.array(fc.integer({ min: 0, max: 2 ** 32 - 1 }), { maxLength: 5 }).map((v) => ({ type: 'array' as const, elementType: ['u32' as const], value: v as GgufValue })),
    );
    const tensor = fc.record({
      type: fc.constantFrom('F32' as const, 'F16' as const, 'Q8_0' as const),
      rows: fc.integer({ min: 1, max: 3 }),
      blocks: fc.integer({ min: 1, max: 2 }),
      seed: fc.array(fc.float({ min: -4, max: 4, noNaN: true }), { minLength: 64, maxLength: 64 }),
    });
    fc.assert(fc.property(fc.uniqueArray(fc.tuple(fc.string({ minLength: 1 }), entry), { selector: (e) => e[0], maxLength: 6 }), fc.array(tensor, { maxLength: 3 }), (meta, ts) => {
      const metadata = meta.map(([key, e]) => ({ key, ...e }));
      const tensors = ts.map((t, i) => {
        const n = t.rows * t.blocks * 32;
        const x = Float32Array.from({ length: n }, (_, k) => t.seed[k % 64] * (1 + k));
        const data = t.type === 'F32' ? f32Bytes(x) : t.type === 'F16' ? f16Bytes(x) : q8_0Bytes(x);
        return { name: `t${i}`, type: t.type, shape: [t.blocks * 32, t.rows], data, x };
      });
      const file = parseGguf(encodeGguf({ metadata, tensors }));
      assert.deepEqual([...file.metadata.keys()], metadata.map((m) => m.key));
      for (const m of metadata) {
        const want = m.type === 'f32' ? Math.fround(m.value as number) : m.value;
        assert.deepEqual(file.metadata.get(m.key), want);
      }
      const again = encodeGguf(toInput(file));
      assert.equal(sha(again), sha(file.bytes));
      file.tensors.forEach((info, i) => {
        const got = ggufTensorF32(file, info);
        const x = tensors[i].x;
        if (tensors[i].type === 'F32') assert.deepEqual(got, x);
        else {
          const amax = Math.max(...x.map(Math.abs));
          got.forEach((v, k) => assert.ok(Math.abs(v - x[k]) <= amax / 100 + 1e-3, `${tensors[i].type} ${v} vs ${x[k]}`));
        }
      });
    }), { numRuns: 60 });
  });

  it('writes K-quant tensors (Q4_K 144, Q5_K 176, Q6_K 210 bytes per 256 values) that read back aligned and intact', () => {
    assert.deepEqual(GGUF_TENSOR_TYPE.Q4_K, { id: 12, bytes: 144, values: 256 });
    assert.deepEqual(GGUF_TENSOR_TYPE.Q5_K, { id: 13, bytes: 176, values: 256 });
    assert.deepEqual(GGUF_TENSOR_TYPE.Q6_K, { id: 14, bytes: 210, values: 256 });
    const x = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    const types = ['Q4_K', 'Q5_K', 'Q6_K', 'BF16', 'F32'] as const;
    const tensors = types.map((type, i) => ({ name: `w${i}`, type, shape: [256, 2], data: ggmlBytes(type, x) }));
    const file = parseGguf(encodeGguf({ metadata: [], tensors }));
    file.tensors.forEach((info, i) => {
      assert.equal(info.type, GGUF_TENSOR_TYPE[types[i]].id);
      assert.equal((file.dataOffset + info.offset) % 32, 0);
      const start = file.dataOffset + info.offset;
      const raw = file.bytes.subarray(start, start + tensors[i].data.byteLength);
      assert.deepEqual(raw, tensors[i].data);
      const y = ggmlDecode(types[i], raw, 512, new Float32Array(512));
      y.forEach((v, k) => assert.ok(Math.abs(v - x[k]) <= 0.1 * 7, `${types[i]} ${k}: ${v} vs ${x[k]}`));
    });
    assert.throws(() => encodeGguf({ metadata: [], tensors: [{ name: 'w', type: 'Q4_K', shape: [128, 4], data: ggmlBytes('Q4_K', x) }] }), /row length 128 is not a multiple of 256/);
    assert.throws(() => ggmlBytes('Q4_1' as 'Q4_K', x), /ggmlBytes: typeName Q4_1/);
  });
});
