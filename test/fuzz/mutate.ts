/**
 * Byte mutations for fuzzing, as fast-check arbitraries: flip bytes, truncate, extend, overwrite a
 * 32/64-bit field with an extreme value (lengths and counts in binary headers), and splice in
 * protobuf fields with wrong wire types or huge declared lengths.
 */
import fc from 'fast-check';

/** One mutation step; positions are taken modulo the current length. */
export type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly xor: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'extend'; readonly bytes: Uint8Array }
  | { readonly op: 'u32'; readonly at: number; readonly value: number }
  | { readonly op: 'u64'; readonly at: number; readonly value: bigint }
  | { readonly op: 'pbField'; readonly at: number; readonly field: number; readonly wireType: number; readonly body: Uint8Array }
  | { readonly op: 'pbHugeLength'; readonly at: number; readonly field: number; readonly length: bigint };

/** Unsigned LEB128 (protobuf varint) of a non-negative bigint. */
export function varint(v: bigint): number[] {
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}

const extremeU32 = fc.constantFrom(0, 1, 0x7f, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff);
const extremeU64 = fc.constantFrom(0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n);

/** Arbitrary single mutation step. */
export const mutationStep: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('extend' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('u32' as const), at: fc.nat(), value: fc.oneof(extremeU32, fc.nat({ max: 0xffffffff })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('u64' as const), at: fc.nat(), value: fc.oneof(extremeU64, fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('pbField' as const), at: fc.nat(), field: fc.integer({ min: 1, max: 20 }), wireType: fc.integer({ min: 0, max: 7 }), body: fc.uint8Array({ maxLength: 16 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('pbHugeLength' as const), at: fc.nat(), field: fc.integer({ min: 1, max: 20 }), length: fc.oneof(extremeU64, fc.bigInt({ min: 1n, max: 2n ** 40n })) }) },
);

/** Apply mutation steps to a copy of `input`. */
export function applyMutations(input: Uint8Array, steps: readonly Mutation[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const m of steps) {
    const at = (n: number): number => (b.length === 0 ? 0 : m.op === 'extend' ? 0 : n % (b.length + 1));
    switch (m.op) {
      case 'flip':
        if (b.length) b[m.at % b.length] ^= m.xor;
        break;
      case 'truncate':
        b = b.slice(0, at(m.at));
        break;
      case 'extend': {
        const out = new Uint8Array(b.length + m.bytes.length);
        out.set(b);
        out.set(m.bytes, b.length);
        b = out;
        break;
      }
      case 'u32':
      case 'u64': {
        const w = m.op === 'u32' ? 4 : 8;
        if (b.length < w) break;
        const p = m.at % (b.length - w + 1);
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        if (m.op === 'u32') dv.setUint32(p, m.value, true);
        else dv.setBigUint64(p, m.value, true);
        break;
      }
      case 'pbField':
      case 'pbHugeLength': {
        const tag = varint(BigInt((m.field << 3) | (m.op === 'pbField' ? m.wireType : 2)));
        const ins = m.op === 'pbField' ? [...tag, ...m.body] : [...tag, ...varint(m.length)];
        const p = at(m.at);
        const out = new Uint8Array(b.length + ins.length);
        out.set(b.subarray(0, p));
        out.set(ins, p);
        out.set(b.subarray(p), p + ins.length);
        b = out;
        break;
      }
    }
  }
  return b;
}

/** Arbitrary mutant of `input`: 1–4 steps. */
export function mutantOf(input: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.array(mutationStep, { minLength: 1, maxLength: 4 }).map((steps) => applyMutations(input, steps));
}

/** Arbitrary mutant of one of `inputs`. */
export function mutantOfAny(inputs: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.nat({ max: inputs.length - 1 }), fc.array(mutationStep, { minLength: 1, maxLength: 4 })).map(([i, steps]) => applyMutations(inputs[i], steps));
}
