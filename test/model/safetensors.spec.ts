import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { decodeAdapterFile, encodeAdapterTensors } from '../../model/adapter-file.js';
import { bf16Bytes, f16Bytes, f32Bytes } from '../../model/gguf-writer.js';
import { encodeSafetensors, parseSafetensors, SafetensorsError, type SafetensorsDtype } from '../../model/safetensors.js';

describe('model/safetensors', () => {
  it('round-trips random tensors and metadata, header padded with spaces to 8 bytes', () => {
    const tensor = fc.record({
      dtype: fc.constantFrom<SafetensorsDtype>('F32', 'F16', 'BF16'),
      shape: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 3 }),
      v: fc.float({ min: -8, max: 8, noNaN: true }),
    });
    fc.assert(fc.property(fc.uniqueArray(fc.tuple(fc.oneof(fc.constantFrom('__proto__', 'constructor'), fc.string({ minLength: 1 })).filter((s) => s !== '__metadata__'), tensor), { selector: (t) => t[0], maxLength: 5 }), fc.option(fc.dictionary(fc.string(), fc.string())), (ts, meta) => {
      const tensors = ts.map(([name, t]) => {
        const x = Float32Array.from({ length: t.shape.reduce((a, b) => a * b, 1) }, (_, i) => t.v * (i + 1));
        return { name, dtype: t.dtype, shape: t.shape, data: t.dtype === 'F32' ? f32Bytes(x) : t.dtype === 'F16' ? f16Bytes(x) : bf16Bytes(x) };
      });
      const bytes = encodeSafetensors(tensors, meta ?? undefined);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assert.equal(n % 8, 0);
      const got = parseSafetensors(bytes);
      assert.deepEqual(got.metadata, { ...(meta ?? {}) });
      assert.deepEqual(got.tensors.map((t) => [t.name, t.dtype, t.shape, [...t.data]]), tensors.map((t) => [t.name, t.dtype, t.shape, [...t.data]]));
    }), { numRuns: 80 });
  });

  it('reads adapter files written by the adapter encoder, and they still decode', () => {
    const a = { name: 'layers.0.wq.lora_A', shape: [2, 3] as [number, number], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
    const bytes = encodeAdapterTensors({ baseSha256: 'a'.repeat(64), lora: { rank: 2, alpha: 4, targets: ['wq'] } as never, baseConfig: { dim: 3 } as never }, [a]);
    const f = parseSafetensors(bytes);
    assert.equal(f.metadata.format, 'fedtune-lora');
    assert.deepEqual(f.tensors[0].shape, [2, 3]);
    assert.deepEqual(new Float32Array(f.tensors[0].data.slice().buffer), a.data);
    assert.deepEqual(decodeAdapterFile(bytes).tensors[0].data, a.data);
  });

  it('refuses bad inputs', () => {
    assert.throws(() => encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [3], data: new Uint8Array(8) }]), /encodeSafetensors: tensor "w" shape/);
    assert.throws(() => parseSafetensors(new Uint8Array(4)), SafetensorsError);
  });
});
