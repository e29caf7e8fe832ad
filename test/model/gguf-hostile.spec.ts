/**
 * Hostile GGUF files as a device might download them: K-quant and float tensors carrying NaN or
 * infinite values or block scales (llama.cpp refuses them in ggml_validate_row_data), headers with
 * absurd counts, dimensions and offsets (written here by hand from the GGUF spec), and gpt2
 * tokenizers whose merges name tokens the vocabulary lacks (Hugging Face tokenizers refuses those
 * on load: MergeTokenOutOfVocabulary). Each must be a ModelFormatError naming the file, at load.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BpeTokenizer, ggmlFirstNonFinite, ggufTextTokenizer, ModelFormatError, parseGguf, readGgufWeights, type GgufFile } from '../../model/index.js';
import { family, familyGguf } from '../support/families.js';

const SOURCE = 'hostile.gguf';
const refused = (why: RegExp) => (e: unknown): boolean => e instanceof ModelFormatError && e.message.includes(SOURCE) && why.test(e.message);

// IEEE 754 binary16 bit patterns: exponent all ones is NaN (mantissa ≠ 0) or ±Inf; 0x7bff = 65504 is the largest finite
const F16_NAN = 0x7e00;
const F16_INF = 0x7c00;
const F16_NEG_INF = 0xfc00;
const F16_MAX = 0x7bff;

describe('model: hostile GGUF files are refused with ModelFormatError', function () {
  this.timeout(20_000);
  const q4km = familyGguf(family('qwen2'), 'Q4_K_M');
  const parsed = parseGguf(q4km, SOURCE);
  // ggml block layouts (ggml-common.h): block_q4_K {d, dmin, scales[12], qs[128]}; block_q6_K {ql[128], qh[64], scales[16], d}
  const q4 = parsed.tensors.find((t) => t.type === 12)!;
  const q6 = parsed.tensors.find((t) => t.type === 14)!;
  const f32 = parsed.tensors.find((t) => t.type === 0)!;

  const patched = (at: number, put: (dv: DataView, p: number) => void): GgufFile => {
    const b = q4km.slice();
    put(new DataView(b.buffer), parsed.dataOffset + at);
    return parseGguf(b, SOURCE);
  };
  const f16 = (tensorOffset: number, within: number, h: number): GgufFile => patched(tensorOffset + within, (dv, p) => dv.setUint16(p, h, true));

  it('a K-quant block whose f16 d or dmin is NaN or ±Inf, in any frozen format', () => {
    const cases: [string, GgufFile][] = [
      ['Q4_K d = NaN', f16(q4.offset, 0, F16_NAN)],
      ['Q4_K d = +Inf (second block)', f16(q4.offset, 144, F16_INF)],
      ['Q4_K dmin = NaN', f16(q4.offset, 2, F16_NAN)],
      ['Q6_K d = -Inf', f16(q6.offset, 208, F16_NEG_INF)],
    ];
    for (const [label, file] of cases) {
      for (const mode of ['none', 'native', 'int8'] as const) {
        assert.throws(() => readGgufWeights(file, mode), refused(/NaN or infinite scale in block \d+/), `${label}, ${mode}`);
      }
    }
  });

  it('an F32 weight that is NaN or infinite', () => {
    assert.throws(() => readGgufWeights(patched(f32.offset + 4, (dv, p) => dv.setFloat32(p, Number.NaN, true)), 'none'), refused(/NaN or infinite value at index 1/));
    assert.throws(() => readGgufWeights(patched(f32.offset, (dv, p) => dv.setFloat32(p, -Infinity, true)), 'native'), refused(/NaN or infinite value at index 0/));
  });

  it('still loads the largest finite f16 scale (no false refusal)', () => {
    const { loaded } = readGgufWeights(f16(q4.offset, 0, F16_MAX), 'none');
    assert.ok(loaded.weights.layers[0].wq.every(Number.isFinite));
  });

  it('ggmlFirstNonFinite finds the first bad value or block of each type', () => {
    const u16 = (...h: number[]): Uint8Array => new Uint8Array(Uint16Array.from(h).buffer);
    assert.equal(ggmlFirstNonFinite('F16', u16(0x3c00, 0x7bff, 0xfc00, 0x7e00), 4), 2);
    assert.equal(ggmlFirstNonFinite('BF16', u16(0x3f80, 0x7f7f, 0xff80), 3), 2); // bf16: exponent bits 0x7f80
    assert.equal(ggmlFirstNonFinite('F16', u16(0x3c00, 0x7bff), 2), -1);
    const q80 = new Uint8Array(34 * 3);
    q80[34 * 2 + 1] = 0x7c; // block 2's d = +Inf
    assert.equal(ggmlFirstNonFinite('Q8_0', q80, 96), 2);
    const q4k = new Uint8Array(144 * 2);
    q4k[144 + 3] = 0xfe; // block 1's dmin = 0xfe00 (a negative NaN)
    assert.equal(ggmlFirstNonFinite('Q4_K', q4k, 512), 1);
    // a quant byte that looks like an f16 NaN is not a scale: Q6_K's d sits in its last two bytes
    const q6k = new Uint8Array(210).fill(0xff);
    q6k[208] = 0;
    q6k[209] = 0x3c;
    assert.equal(ggmlFirstNonFinite('Q6_K', q6k, 256), -1);
  });

  /** GGUF v3 (spec: magic, version u32, tensor count u64, kv count u64, then per tensor name, n_dims u32, dims u64[], type u32, offset u64), no metadata. */
  function header(tensors: { name: string; dims: bigint[]; type: number; offset: bigint }[], tensorCount = BigInt(tensors.length)): Uint8Array {
    const parts: Buffer[] = [Buffer.from('GGUF')];
    const u32 = (v: number): void => void parts.push(Buffer.from(Uint32Array.of(v).buffer));
    const u64 = (v: bigint): void => void parts.push(Buffer.from(BigUint64Array.of(v).buffer));
    u32(3);
    u64(tensorCount);
    u64(0n);
    for (const t of tensors) {
      u64(BigInt(Buffer.byteLength(t.name)));
      parts.push(Buffer.from(t.name));
      u32(t.dims.length);
      t.dims.forEach(u64);
      u32(t.type);
      u64(t.offset);
    }
    return new Uint8Array(Buffer.concat([...parts, Buffer.alloc(96)]));
  }

  it('headers with huge tensor counts, absurd dimensions and overflowing offsets, without allocating', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['2^63 tensors', header([], 2n ** 63n), /tensor count \d+ is too large/],
      ['2^40 tensors', header([], 2n ** 40n), /tensor count \d+ exceeds/],
      ['dims 2^32 × 2^32 × 2^32', header([{ name: 'w', dims: [2n ** 32n, 2n ** 32n, 2n ** 32n], type: 0, offset: 0n }]), /absurd dimensions/],
      ['dim 2^64 − 1', header([{ name: 'w', dims: [2n ** 64n - 1n], type: 0, offset: 0n }]), /too large/],
      ['offset 2^64 − 32', header([{ name: 'w', dims: [8n], type: 0, offset: 2n ** 64n - 32n }]), /too large/],
      ['offset 2^53 − 32', header([{ name: 'w', dims: [8n], type: 0, offset: 2n ** 53n - 32n }]), /runs past the end/],
      ['Q4_K row of 255', header([{ name: 'w', dims: [255n], type: 12, offset: 0n }]), /not a multiple of 256/],
      ['five dimensions', header([{ name: 'w', dims: [1n, 1n, 1n, 1n, 1n], type: 0, offset: 0n }]), /5 dimensions/],
    ];
    for (const [label, bytes, why] of cases) assert.throws(() => parseGguf(bytes, SOURCE), refused(why), label);
  });

  describe('a gpt2 tokenizer whose merges name missing tokens', () => {
    const f = family('qwen2');
    const [a, b] = f.merges[0].split(' ');
    const without = (token: string): string[] => f.tokens.map((t) => (t === token ? `\u2603gone-${t}` : t));

    it('refuses a merge whose result, or one of whose parts, is not a token, when the file is read', () => {
      const noResult = familyGguf({ ...f, tokens: without(a + b) }, 'F32');
      assert.throws(() => ggufTextTokenizer(parseGguf(noResult, SOURCE)), refused(new RegExp(`merge 0 .* not in the vocabulary`)));
      const noPart = familyGguf({ ...f, merges: ['zzq zzr', ...f.merges] }, 'F32');
      assert.throws(() => ggufTextTokenizer(parseGguf(noPart, SOURCE)), refused(/"zzq", which is not in the vocabulary/));
    });

    it('property: a tokenizer that loads encodes any text without throwing, and decodes it back', () => {
      const tok = BpeTokenizer.fromGgufMetadata({ tokens: f.tokens, merges: f.merges, tokenTypes: f.tokenTypes, pre: f.pre, bosId: f.bosId, eosId: f.eosId, addBos: false });
      fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        assert.equal(new TextDecoder().decode(tok.decodeBytes(tok.encode(s, { special: false }))), s);
      }), { numRuns: 100 });
    });
  });
});
