/**
 * A running sum in Z_(2^32) for masking and unmasking: words and mask keystreams are added with
 * WebAssembly SIMD (i32x4 add/sub, ~6× a JavaScript loop), the sum living in the instance's
 * memory, so a mask is never materialised whole — its AES-256-CTR keystream (see
 * {@link expandMask}) is made 64 KiB at a time, copied next to the sum and added. Where
 * WebAssembly SIMD is missing the same arithmetic runs in JavaScript. Results are identical
 * either way (two's-complement 32-bit arithmetic is arithmetic mod 2^32).
 */
import { maskStream } from './masking.js';
import { section, sized } from '../../wasm/index.js';

/** Keystream bytes made per OpenSSL call (stays in L2 cache). */
const CHUNK_BYTES = 64 * 1024;
const ZERO_CHUNK = Buffer.alloc(CHUNK_BYTES);
const PAGE = 64 * 1024;

interface Kernels {
  /** Words at dst (byte offset) ← dst ± src, `bytes` a multiple of 16. */
  add(dst: number, src: number, bytes: number): void;
  sub(dst: number, src: number, bytes: number): void;
}

// (module (import "e" "m" (memory 1)) (func $add (param dst src bytes) (loop … v128.store(dst, i32x4.add(v128.load dst, v128.load src)) …)) (func $sub …))
function kernelBody(op: number): number[] {
  return [
    0x00, // no locals
    0x02, 0x40, 0x03, 0x40, // block, loop
    0x20, 0x02, 0x45, 0x0d, 0x01, // if bytes == 0 break
    0x20, 0x00, 0x20, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x20, 0x01, 0xfd, 0x00, 0x00, 0x00, 0xfd, op, 0x01, 0xfd, 0x0b, 0x00, 0x00,
    0x20, 0x00, 0x41, 0x10, 0x6a, 0x21, 0x00, // dst += 16
    0x20, 0x01, 0x41, 0x10, 0x6a, 0x21, 0x01, // src += 16
    0x20, 0x02, 0x41, 0x10, 0x6b, 0x21, 0x02, // bytes -= 16
    0x0c, 0x00, 0x0b, 0x0b, 0x0b, // continue; end loop, block, func
  ];
}
const WASM = Uint8Array.from([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 0]), // type (i32, i32, i32) → ()
  ...section(2, [1, 1, 0x65, 1, 0x6d, 2, 0, 1]), // import e.m: memory, min 1 page
  ...section(3, [2, 0, 0]),
  ...section(7, [2, 3, 0x61, 0x64, 0x64, 0, 0, 3, 0x73, 0x75, 0x62, 0, 1]), // export add, sub
  ...section(10, [2, ...sized(kernelBody(0xae)), ...sized(kernelBody(0xb1))]), // i32x4.add, i32x4.sub
]);

let simdModule: WebAssembly.Module | null | undefined;
function wasmModule(): WebAssembly.Module | null {
  if (simdModule === undefined) {
    try {
      simdModule = typeof WebAssembly === 'object' && WebAssembly.validate(WASM) ? new WebAssembly.Module(WASM) : null;
    } catch {
      simdModule = null;
    }
  }
  return simdModule;
}

function jsKernels(buffer: ArrayBuffer): Kernels {
  const w = new Int32Array(buffer);
  return {
    add(dst, src, bytes) {
      const d = dst >> 2;
      const s = src >> 2;
      for (let i = 0; i < bytes >> 2; i++) w[d + i] = (w[d + i] + w[s + i]) | 0;
    },
    sub(dst, src, bytes) {
      const d = dst >> 2;
      const s = src >> 2;
      for (let i = 0; i < bytes >> 2; i++) w[d + i] = (w[d + i] - w[s + i]) | 0;
    },
  };
}

/** True if {@link MaskSum} adds with WebAssembly SIMD here (else in JavaScript, same results). */
export function maskSumUsesSimd(): boolean {
  return wasmModule() !== null;
}

/** A sum of `length` words in Z_(2^32), starting at zero. */
export class MaskSum {
  /** Number of words. */
  readonly length: number;
  private readonly bytes: Uint8Array;
  private readonly kernels: Kernels;
  private readonly scratch: number;
  /** True if the sum is added with WebAssembly SIMD. */
  readonly simd: boolean;

  /** `simd: false` forces the JavaScript path (for tests and comparison). */
  constructor(length: number, options: { simd?: boolean } = {}) {
    if (!Number.isSafeInteger(length) || length < 0 || length > 2 ** 29) throw new RangeError(`MaskSum: length must be an integer in [0, 2^29], got ${length}`);
    this.length = length;
    this.scratch = Math.ceil((4 * length) / 16) * 16;
    const total = this.scratch + CHUNK_BYTES;
    const module = options.simd === false ? null : wasmModule();
    this.simd = module !== null;
    if (module) {
      const memory = new WebAssembly.Memory({ initial: Math.ceil(total / PAGE) });
      const exports = new WebAssembly.Instance(module, { e: { m: memory } }).exports as unknown as Kernels;
      this.kernels = { add: exports.add, sub: exports.sub };
      this.bytes = new Uint8Array(memory.buffer);
    } else {
      this.bytes = new Uint8Array(Math.ceil(total / 16) * 16);
      this.kernels = jsKernels(this.bytes.buffer as ArrayBuffer);
    }
  }

  /** this ← this + sign·words mod 2^32. */
  add(words: Uint32Array, sign: 1 | -1 = 1): this {
    if (!(words instanceof Uint32Array) || words.length !== this.length) throw new RangeError(`MaskSum.add: words must be a Uint32Array of ${this.length} values`);
    checkSign('MaskSum.add', sign);
    const src = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
    for (let at = 0; at < src.length; at += CHUNK_BYTES) {
      const part = src.subarray(at, at + CHUNK_BYTES);
      this.bytes.set(part, this.scratch);
      this.apply(at, part.length, sign);
    }
    return this;
  }

  /** this ← this + sign·expandMask(seed, length) mod 2^32, without materialising the mask. */
  addMask(seed: Uint8Array, sign: 1 | -1): this {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new TypeError('MaskSum.addMask: seed must be 32 bytes');
    checkSign('MaskSum.addMask', sign);
    const cipher = maskStream(seed);
    for (let at = 0; at < 4 * this.length; at += CHUNK_BYTES) {
      const n = Math.min(CHUNK_BYTES, 4 * this.length - at);
      this.bytes.set(cipher.update(n === CHUNK_BYTES ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, n)), this.scratch);
      this.apply(at, n, sign);
    }
    cipher.final();
    return this;
  }

  /** A copy of the sum. */
  toUint32Array(): Uint32Array {
    return new Uint32Array(this.bytes.slice(0, 4 * this.length).buffer);
  }

  /** A new MaskSum holding the same value. */
  clone(): MaskSum {
    const c = new MaskSum(this.length, { simd: this.simd });
    c.bytes.set(this.bytes.subarray(0, 4 * this.length));
    return c;
  }

  // bytes past the sum's end (to the 16-byte boundary) are padding: whatever the scratch holds there lands in padding only
  private apply(at: number, n: number, sign: 1 | -1): void {
    const rounded = Math.ceil(n / 16) * 16;
    if (sign === 1) this.kernels.add(at, this.scratch, rounded);
    else this.kernels.sub(at, this.scratch, rounded);
  }
}

function checkSign(where: string, sign: number): void {
  if (sign !== 1 && sign !== -1) throw new RangeError(`${where}: sign must be 1 or -1, got ${String(sign)}`);
}
