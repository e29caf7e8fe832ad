/**
 * FedAvg as a streaming accumulator: Σ wₖ·uₖ and Σ wₖ in float64, O(model) memory however many
 * updates arrive. Pure math over Float32Array, no I/O.
 *
 * The inner loops run in a small WebAssembly SIMD kernel when the runtime has one (Node ≥ 16.4):
 * V8 does not vectorise JS loops, and a scalar `sum[i] += w * u[i]` moves ~3 GB/s of update data
 * where the machine copies at ~20 GB/s. The float64 sum lives in the kernel's memory; each update
 * is staged through a 64 KiB buffer there (a memcpy), checked for non-finite values in one pass
 * and added in a second, so a rejected update still leaves the sum untouched. The kernel computes
 * exactly `sum + w·u` per element in float64 (wasm has no fused multiply-add), so results are
 * bit-identical to the scalar loop, which remains the fallback.
 *
 * Faster still, when fedtune's native addon is present (see fedavg-native.ts): the addon's fold
 * reads the update where it lies, with no staging copy, and the sum is a plain Float64Array —
 * same two passes, same per-element arithmetic, same bits. Order of preference: native, wasm
 * SIMD, scalar; {@link FedAvgAccumulator.engine} says which one an accumulator uses.
 */
import { leb, section, sized, vec } from '../wasm/index.js';
import { nativeFedAvgFold, type NativeFolds } from './fedavg-native.js';

/** Floats per staged chunk for long updates (64 KiB: one wasm page, stays in L2). */
const CHUNK = 16384;
/** Updates up to this many floats (4 MiB) are staged whole, once, instead of chunk by chunk twice. */
const WHOLE = 2 ** 20;

const funcBody = (locals: number[], code: number[]): number[] => sized([...locals, ...code, 0x0b]);

/**
 * The kernel, assembled here (it is small enough to read):
 *   check(p, n8) → i32: 1 if any of the n8·8 f32 at byte p is not finite
 *     (acc += v − v over f32x4: 0 for finite lanes, NaN otherwise; then any lane ≠ itself).
 *   add(src, dst, n8, w): f64 dst[i] += w · f64(f32 src[i]) for n8·8 values, two f64x2 per f32x4.
 *   memory "mem", grown by the caller.
 */
function kernelBytes(): Uint8Array<ArrayBuffer> {
  const SIMD = 0xfd;
  const v128load = (offset: number): number[] => [SIMD, 0x00, 4, ...leb(offset)];
  const v128store = (offset: number): number[] => [SIMD, 0x0b, 4, ...leb(offset)];
  const [localGet, localSet, localTee, i32const, i32add, i32sub, i32eqz, brIf, block, loop, end] = [0x20, 0x21, 0x22, 0x41, 0x6a, 0x6b, 0x45, 0x0d, 0x02, 0x03, 0x0b];
  const f32x4add = [SIMD, ...leb(0xe4)];
  const f32x4sub = [SIMD, ...leb(0xe5)];
  const f32x4ne = [SIMD, ...leb(0x42)];
  const anyTrue = [SIMD, ...leb(0x53)];
  const f64x2splat = [SIMD, ...leb(0x14)];
  const f64x2add = [SIMD, ...leb(0xf0)];
  const f64x2mul = [SIMD, ...leb(0xf2)];
  const promoteLow = [SIMD, ...leb(0x5f)];
  const swapHalves = [SIMD, 0x0d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
  const V128 = 0x7b;
  // check(p: i32 = 0, n8: i32 = 1) → i32; locals 2, 3: two accumulators (independent chains)
  const check = funcBody(
    [1, 2, V128],
    [
      block, 0x40, localGet, 1, i32eqz, brIf, 0,
      loop, 0x40,
      localGet, 2, localGet, 0, ...v128load(0), localGet, 0, ...v128load(0), ...f32x4sub, ...f32x4add, localSet, 2,
      localGet, 3, localGet, 0, ...v128load(16), localGet, 0, ...v128load(16), ...f32x4sub, ...f32x4add, localSet, 3,
      localGet, 0, i32const, 32, i32add, localSet, 0,
      localGet, 1, i32const, 1, i32sub, localTee, 1, brIf, 0,
      end, end,
      localGet, 2, localGet, 3, ...f32x4add, localTee, 2, localGet, 2, ...f32x4ne, ...anyTrue,
    ],
  );
  // add(src: i32 = 0, dst: i32 = 1, n8: i32 = 2, w: f64 = 3); locals 4: splat(w), 5: v
  const half = (srcOff: number, dstOff: number): number[] => [
    localGet, 0, ...v128load(srcOff), localSet, 5,
    localGet, 1, localGet, 1, ...v128load(dstOff), localGet, 5, ...promoteLow, localGet, 4, ...f64x2mul, ...f64x2add, ...v128store(dstOff),
    localGet, 1, localGet, 1, ...v128load(dstOff + 16), localGet, 5, localGet, 5, ...swapHalves, ...promoteLow, localGet, 4, ...f64x2mul, ...f64x2add, ...v128store(dstOff + 16),
  ];
  const add = funcBody(
    [1, 2, V128],
    [
      localGet, 3, ...f64x2splat, localSet, 4,
      block, 0x40, localGet, 2, i32eqz, brIf, 0,
      loop, 0x40,
      ...half(0, 0),
      ...half(16, 32),
      localGet, 0, i32const, 32, i32add, localSet, 0,
      localGet, 1, i32const, 0xc0, 0x00, i32add, localSet, 1,
      localGet, 2, i32const, 1, i32sub, localTee, 2, brIf, 0,
      end, end,
    ],
  );
  const str = (s: string): number[] => [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, 2, 0x7f, 0x7f, 1, 0x7f], [0x60, 4, 0x7f, 0x7f, 0x7f, 0x7c, 0]])),
    ...section(3, vec([[0], [1]])),
    ...section(5, vec([[0x00, 1]])),
    ...section(7, vec([[...str('mem'), 0x02, 0], [...str('check'), 0x00, 0], [...str('add'), 0x00, 1]])),
    ...section(10, [...leb(2), ...check, ...add]),
  ]);
}

let kernelModule: WebAssembly.Module | null | undefined;
function kernel(): WebAssembly.Module | null {
  if (kernelModule === undefined) {
    try {
      kernelModule = new WebAssembly.Module(kernelBytes());
    } catch {
      kernelModule = null; // no wasm SIMD here: the scalar loops serve
    }
  }
  return kernelModule;
}

interface Kernel {
  readonly stage: Float32Array;
  check(p: number, n8: number): number;
  add(src: number, dst: number, n8: number, w: number): void;
}

/** Which inner loops an accumulator runs: the native addon's fold, the wasm SIMD kernel, or plain JS. */
export type FedAvgEngine = 'native' | 'wasm' | 'scalar';

/** Running example-weighted mean of equal-length updates. */
export class FedAvgAccumulator {
  private readonly sum: Float64Array;
  private readonly k: Kernel | null = null;
  private readonly fold: NativeFolds | null;
  private readonly sumAt: number = 0;
  private totalWeight = 0;
  private n = 0;

  /** @param length the update length every added update must have. */
  constructor(readonly length: number) {
    if (!Number.isInteger(length) || length <= 0) throw new RangeError(`FedAvgAccumulator: length must be a positive integer, got ${length}`);
    // kernel memory: the staging area (the whole update, or one chunk), then the sum padded to a
    // multiple of 8 (pads stay 0)
    this.fold = nativeFedAvgFold();
    if (this.fold) {
      this.sum = new Float64Array(length);
      return;
    }
    const padded = 8 * Math.ceil(length / 8);
    const stageFloats = length <= WHOLE ? padded : CHUNK;
    this.sumAt = 4 * stageFloats;
    const bytes = this.sumAt + 8 * padded;
    const mod = bytes <= 2 ** 31 ? kernel() : null;
    let sum: Float64Array | undefined;
    if (mod) {
      try {
        const inst = new WebAssembly.Instance(mod, {});
        const mem = inst.exports.mem as WebAssembly.Memory;
        mem.grow(Math.ceil(bytes / 65536) - 1);
        const ex = inst.exports as unknown as { check(p: number, n8: number): number; add(src: number, dst: number, n8: number, w: number): void };
        this.k = { stage: new Float32Array(mem.buffer, 0, stageFloats), check: ex.check, add: ex.add };
        sum = new Float64Array(mem.buffer, this.sumAt, length);
      } catch {
        this.k = null; // memory could not grow that far: the scalar loops serve
      }
    }
    this.sum = sum ?? new Float64Array(length);
  }

  /** Copy update[off, off + m) into the staging chunk, zero-padded to a multiple of 8; returns m/8 rounded up. */
  private stage(update: Float32Array, off: number, m: number): number {
    const st = this.k!.stage;
    st.set(m === update.length ? update : update.subarray(off, off + m));
    const n8 = (m + 7) >> 3;
    for (let i = m; i < 8 * n8; i++) st[i] = 0;
    return n8;
  }

  private validate(fn: string, update: Float32Array, weight: number): void {
    if (!(update instanceof Float32Array)) throw new TypeError(`FedAvgAccumulator.${fn}: update must be a Float32Array`);
    if (update.length !== this.length) throw new RangeError(`FedAvgAccumulator.${fn}: update has ${update.length} values, expected ${this.length}`);
    if (typeof weight !== 'number' || !(weight > 0) || !Number.isFinite(weight)) throw new RangeError(`FedAvgAccumulator.${fn}: weight must be a positive finite number, got ${weight}`);
  }

  /**
   * Add several updates, with the bits successive {@link add} calls would give. Argument errors
   * (type, length, weight) are found before anything is added; an update holding a non-finite
   * value throws after the ones before it were added (as successive add calls would), naming it.
   * On the native engine, for updates of 1Mi values or more, up to 4 updates share one pass over
   * the float64 sum, whose traffic is what bounds the fold once the sum no longer fits in cache
   * (see BENCHMARKS.md); smaller ones are folded one per pass, which measured faster.
   */
  addAll(items: readonly { update: Float32Array; weight: number }[]): void {
    if (!Array.isArray(items)) throw new TypeError('FedAvgAccumulator.addAll: items must be an array of { update, weight }');
    items.forEach((it, j) => {
      if (typeof it !== 'object' || it === null) throw new TypeError(`FedAvgAccumulator.addAll: item ${j} must be { update, weight }`);
      this.validate(`addAll (item ${j})`, it.update, it.weight);
    });
    if (!this.fold) {
      items.forEach((it, j) => {
        try {
          this.add(it.update, it.weight);
        } catch (e) {
          throw new RangeError(`FedAvgAccumulator.addAll: item ${j}: ${(e as Error).message.replace('FedAvgAccumulator.add: ', '')}`);
        }
      });
      return;
    }
    const failed = this.fold.many(this.sum, items.map((it) => it.update), Float64Array.from(items, (it) => it.weight));
    const done = failed < 0 ? items.length : failed;
    for (let j = 0; j < done; j++) this.totalWeight += items[j].weight;
    this.n += done;
    if (failed >= 0) {
      const u = items[failed].update;
      let i = 0;
      while (i < u.length && Number.isFinite(u[i])) i++;
      throw new RangeError(`FedAvgAccumulator.addAll: item ${failed}: update holds a non-finite value at ${i}`);
    }
  }

  /** Add one update with weight `weight` (e.g. its example count). */
  add(update: Float32Array, weight: number): void {
    this.validate('add', update, weight);
    const k = this.k;
    if (this.fold) {
      const bad = this.fold.one(this.sum, update, weight);
      if (bad >= 0) throw new RangeError(`FedAvgAccumulator.add: update holds a non-finite value at ${bad}`);
    } else if (k && k.stage.length >= update.length) {
      // staged once: check, then add
      const n8 = this.stage(update, 0, update.length);
      if (k.check(0, n8)) {
        for (let i = 0; i < update.length; i++) {
          if (!Number.isFinite(update[i])) throw new RangeError(`FedAvgAccumulator.add: update holds a non-finite value at ${i}`);
        }
      }
      k.add(0, this.sumAt, n8, weight);
    } else if (k) {
      // pass 1: all finite? (nothing changes if not)
      for (let off = 0; off < update.length; off += CHUNK) {
        const m = Math.min(CHUNK, update.length - off);
        if (k.check(0, this.stage(update, off, m))) {
          for (let i = off; i < off + m; i++) {
            if (!Number.isFinite(update[i])) throw new RangeError(`FedAvgAccumulator.add: update holds a non-finite value at ${i}`);
          }
        }
      }
      // pass 2: sum += w·u
      for (let off = 0; off < update.length; off += CHUNK) {
        const m = Math.min(CHUNK, update.length - off);
        k.add(0, this.sumAt + 8 * off, this.stage(update, off, m), weight);
      }
    } else {
      for (let i = 0; i < update.length; i++) {
        if (!Number.isFinite(update[i])) throw new RangeError(`FedAvgAccumulator.add: update holds a non-finite value at ${i}`);
      }
      const sum = this.sum;
      for (let i = 0; i < update.length; i++) sum[i] += weight * update[i];
    }
    this.totalWeight += weight;
    this.n++;
  }

  /** The inner loops this accumulator runs (chosen at construction). */
  get engine(): FedAvgEngine {
    return this.fold ? 'native' : this.k ? 'wasm' : 'scalar';
  }

  /** Updates added so far. */
  get count(): number {
    return this.n;
  }

  /** Sum of weights so far. */
  get weight(): number {
    return this.totalWeight;
  }

  /** The weighted sum Σ wₖ·uₖ (for strategies that add noise before dividing). */
  weightedSum(): Float64Array {
    return this.sum.slice();
  }

  /** The weighted mean; throws if nothing was added. */
  mean(): Float32Array {
    if (this.n === 0) throw new RangeError('FedAvgAccumulator.mean: no updates were added');
    const out = new Float32Array(this.length);
    const sum = this.sum;
    const w = this.totalWeight;
    for (let i = 0; i < out.length; i++) out[i] = sum[i] / w;
    return out;
  }
}

/** Example-weighted mean of updates (one-shot form of {@link FedAvgAccumulator}). */
export function fedAvg(updates: readonly { update: Float32Array; weight: number }[]): Float32Array {
  if (updates.length === 0) throw new RangeError('fedAvg: no updates');
  const acc = new FedAvgAccumulator(updates[0].update.length);
  acc.addAll(updates);
  return acc.mean();
}
