/**
 * Loading fedtune's optional native addon (native/: an N-API SGEMM built from source at install
 * time by native/install.mjs). When the build failed or was skipped, or FEDTUNE_NATIVE=0, the
 * addon is absent and everything runs on the wasm path; {@link nativeAddon} says why.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon's functions (see native/src/addon.cc). */
export interface NativeAddon {
  /**
   * For each of `batch` products: c[i·M·N…] = op(a[i·strideA…]) · op(b[i·strideB…]), row-major,
   * op transposing a ([K, M]) or b ([N, K]) when asked; strides in floats, 0 broadcasts.
   */
  sgemm(a: Float32Array, b: Float32Array, c: Float32Array, batch: number, M: number, N: number, K: number, transA: boolean, transB: boolean, strideA: number, strideB: number, threads: number): void;
  /** The instruction set in use: 'avx512', 'avx2' or 'generic'. */
  isa(): string;
  /** Force an instruction set (tests); false when this CPU lacks it. */
  setIsa(name: 'generic' | 'avx2' | 'avx512'): boolean;
  /**
   * Fused causal attention (native/src/attention.cc): out [B, T, H, hs] = softmax(scale·q kᵀ,
   * causal) v per query head, query head h reading kv head h / (H / kvH) of k, v [B, T, kvH, hs];
   * lse [B, H, T] receives each row's log-sum-exp of the scaled scores. Threaded over B·kvH groups.
   * With cos, sin ([T, hs]), partner and sign ([hs]), q and k are taken before RoPE:
   * x_i·cos + sign_i·x_partner(i)·sin is applied to them first.
   */
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, B: number, T: number, H: number, kvH: number, hs: number, scale: number, threads: number, cos?: Float32Array, sin?: Float32Array, partner?: Int32Array, sign?: Float32Array): void;
  /** Gradient of {@link attentionForward} given dout [B, T, H, hs]: writes dq, dk and dv (overwritten), through RoPE when its tables are given. */
  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, lse: Float32Array, dout: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array, B: number, T: number, H: number, kvH: number, hs: number, scale: number, threads: number, cos?: Float32Array, sin?: Float32Array, partner?: Int32Array, sign?: Float32Array): void;
  /** The instruction set of the attention kernels. */
  attentionIsa(): string;
  /** Force the attention kernels' instruction set (tests); false when this CPU lacks it. */
  attentionSetIsa(name: 'generic' | 'avx2' | 'avx512'): boolean;
  /** y = x / √(mean(x²) + eps) · w for each of `rows` rows of `dim` values (native/src/rowwise.cc). */
  rmsNormForward(x: Float32Array, w: Float32Array, y: Float32Array, rows: number, dim: number, eps: number, threads: number): void;
  /** Gradient of {@link rmsNormForward}: dx always, dw (column sums) when not null. */
  rmsNormBackward(x: Float32Array, w: Float32Array, dy: Float32Array, dx: Float32Array, dw: Float32Array | null, rows: number, dim: number, eps: number, threads: number): void;
  /** y = a·σ(a)·b over n values. */
  swigluForward(a: Float32Array, b: Float32Array, y: Float32Array, n: number, threads: number): void;
  /** Gradient of {@link swigluForward}: da and db. */
  swigluBackward(a: Float32Array, b: Float32Array, dy: Float32Array, da: Float32Array, db: Float32Array, n: number, threads: number): void;
  /** Per row of `rows` × `vocab` logits: lse = log Σ exp, nll = lse − logits[target]. */
  nllForward(logits: Float32Array, targets: Int32Array, nll: Float32Array, lse: Float32Array, rows: number, vocab: number, threads: number): void;
  /** Gradient of {@link nllForward}: dlogits = dnll · (softmax − one-hot of the target) per row. */
  nllBackward(logits: Float32Array, lse: Float32Array, targets: Int32Array, dnll: Float32Array, dlogits: Float32Array, rows: number, vocab: number, threads: number): void;
  /**
   * out[i] = code_i · half(scales[⌊i / block⌋]) for i < n (native/src/dequant.cc): kind 8 reads
   * Q8_0 int8 codes, kind 4 Q4_0 nibbles (model/quant.ts's layout). Bit-identical to dequantizeInto.
   */
  dequantize(kind: 8 | 4, data: Int8Array | Uint8Array, scales: Uint16Array, block: number, out: Float32Array, n: number, threads: number): void;
}

/** Whether the addon loaded, and if not, why. */
export type NativeStatus = { readonly loaded: true; readonly addon: NativeAddon; readonly path: string } | { readonly loaded: false; readonly reason: string };

/** The package's native/ folder (this file is dist/model/ops/native-addon.js or model/ops/native-addon.ts). */
export function nativeDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'native', 'binding.gyp'))) return join(dir, 'native');
    dir = dirname(dir);
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native');
}

let status: NativeStatus | undefined;

/** Load the addon once (FEDTUNE_NATIVE=0 disables it); never throws. */
export function nativeAddon(): NativeStatus {
  if (status) return status;
  if (process.env.FEDTUNE_NATIVE === '0') return (status = { loaded: false, reason: 'disabled by FEDTUNE_NATIVE=0' });
  const dir = nativeDir();
  const path = join(dir, 'build', 'Release', 'fedtune_native.node');
  if (!existsSync(path)) {
    let why = `${path} does not exist`;
    try {
      const s = JSON.parse(readFileSync(join(dir, 'build-status.json'), 'utf8')) as { ok?: boolean; reason?: string };
      if (s.reason) why += `; the install-time build reported: ${s.reason}`;
    } catch {
      why += ' and no install-time build was recorded (run: node native/install.mjs)';
    }
    return (status = { loaded: false, reason: why });
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    return (status = { loaded: true, addon, path });
  } catch (e) {
    return (status = { loaded: false, reason: `${path} failed to load: ${(e as Error).message}` });
  }
}
