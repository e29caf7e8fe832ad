/**
 * Fuzz targets over the decoders a peer or a file can reach: update payloads, signing payloads,
 * adapter files (safetensors), base files (GGUF — llama2.c's and a K-quant qwen2 family file —,
 * llama2.c), and the ustar bundles a device unpacks its base from. Each input either decodes or is
 * refused with the decoder's own error type; anything else (a RangeError from a typed array, a
 * TypeError, a slow decode) is a finding.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AdapterFileError, decodeAdapterFile, encodeAdapterTensors } from '../../model/adapter-file.js';
import { adapterTensorsFromFlat, initialAdapterFlat } from '../../model/adapter-flat.js';
import { ModelFormatError, parseLlama2cCheckpoint } from '../../model/checkpoint.js';
import { parseGguf } from '../../model/gguf.js';
import { ggufToBase, readGgufWeights } from '../../model/gguf-base.js';
import { ggufConfig } from '../../model/gguf-config.js';
import { ggufTextTokenizer } from '../../model/gguf-tokenizer.js';
import { extractUstarBundle, USTAR_BLOCK, writeUstarBundle } from '../../model/dir-bundle.js';
import { family, writeFamilyGguf } from '../support/families.js';
import { loraConfig } from '../../model/lora-config.js';
import { defaultModelDir } from '../../model/paths.js';
import { seededRng } from '../../random/rng.js';
import { loadProtos } from '../../proto/load.js';
import { signingPayloadFromWire } from '../../proto/signing.js';
import { stochasticQuantize } from '../../privacy/compress.js';
import { decodeMasked, decodeUpdate, encodeMasked, encodeUpdate, UPDATE_ENCODINGS, UPDATE_QUANT_BLOCK } from '../../proto/update-codec.js';
import { WireFormatError } from '../../proto/wire-error.js';
import { mutantOf, mutantOfAny } from './mutate.js';

/** How one decode ended. */
export type DecodeOutcome = 'decoded' | 'refused';

/** A decoder fuzz target. */
export interface DecoderTarget<T> {
  readonly name: string;
  readonly input: fc.Arbitrary<T>;
  /** Decode; returns how it ended, throws (the finding) if the error is not the decoder's own type. */
  run(input: T): DecodeOutcome;
}

/** A decode slower than this is a finding (a hang in the making). */
export const SLOW_DECODE_MS = 2000;

function typed<T>(errorType: new (...a: never[]) => Error, body: (input: T) => unknown): (input: T) => DecodeOutcome {
  return (input) => {
    const t0 = performance.now();
    try {
      body(input);
      return 'decoded';
    } catch (e) {
      if (e instanceof errorType) return 'refused';
      throw new Error(`untyped failure (expected ${errorType.name}): ${(e as Error)?.stack ?? String(e)}`);
    } finally {
      const ms = performance.now() - t0;
      if (ms > SLOW_DECODE_MS) throw new Error(`decode took ${ms.toFixed(0)} ms`);
    }
  };
}

/** The inputs the file targets mutate. */
export interface FuzzFiles {
  /** stories260K.bin, stories260K.gguf and a real adapter over it. */
  readonly bin: Uint8Array;
  readonly gguf: Uint8Array;
  readonly adapter: Uint8Array;
  /** A small qwen2-family GGUF in llama.cpp's Q4_K_M mix (Q4_K and Q6_K matrices, a gpt2 tokenizer). */
  readonly kquantGguf: Uint8Array;
  /** A ustar bundle of three small files, and the byte offsets of its headers. */
  readonly bundle: Uint8Array;
  readonly bundleHeaders: readonly number[];
}

/** The real stories260K files, a real adapter over it, a K-quant family GGUF and a small bundle (made once). */
export function realInputs(): FuzzFiles {
  const dir = defaultModelDir();
  const bin = new Uint8Array(readFileSync(join(dir, 'stories260K.bin')));
  const gguf = new Uint8Array(readFileSync(join(dir, 'stories260K.gguf')));
  const base = parseLlama2cCheckpoint(bin);
  const lora = loraConfig({ rank: 2, targets: ['wq', 'wv'], seed: 3 });
  const flat = initialAdapterFlat(base.weights.config, lora);
  for (let i = 0; i < flat.length; i += 7) flat[i] += 0.01; // B non-zero too
  const adapter = encodeAdapterTensors({ baseSha256: 'ab'.repeat(32), lora, baseConfig: base.weights.config }, adapterTensorsFromFlat(base.weights.config, lora, flat));
  const kquantPath = writeFamilyGguf(family('qwen2'), 'Q4_K_M');
  const kquantGguf = new Uint8Array(readFileSync(kquantPath));
  rmSync(join(kquantPath, '..'), { recursive: true, force: true });
  const src = mkdtempSync(join(tmpdir(), 'fedtune-fuzz-bundle-'));
  const sizes: Record<string, number> = { 'config.json': 20, 'empty.txt': 0, 'model.safetensors': 700 };
  for (const [name, n] of Object.entries(sizes)) writeFileSync(join(src, name), Buffer.alloc(n, name.charCodeAt(0)));
  writeUstarBundle(join(src, 'b.tar'), Object.keys(sizes).map((name) => ({ name, path: join(src, name) })));
  const bundle = new Uint8Array(readFileSync(join(src, 'b.tar')));
  rmSync(src, { recursive: true, force: true });
  const bundleHeaders: number[] = [];
  for (let p = 0, k = 0; k < 3; k++) {
    bundleHeaders.push(p);
    p += USTAR_BLOCK + Math.ceil(sizes[Object.keys(sizes).sort()[k]] / USTAR_BLOCK) * USTAR_BLOCK;
  }
  return { bin, gguf, adapter, kquantGguf, bundle, bundleHeaders };
}

/** Rewrite the ustar checksum of each header block at `offsets` still inside `b` (so mutations reach past the checksum check). */
function fixChecksums(b: Uint8Array, offsets: readonly number[]): Uint8Array {
  for (const at of offsets) {
    if (at + USTAR_BLOCK > b.length) continue;
    let sum = 0;
    for (let i = 0; i < USTAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[at + i];
    Buffer.from(b.buffer, b.byteOffset, b.byteLength).write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
  }
  return b;
}

/**
 * Extract `bytes` as a bundle into a fresh directory: a refusal must leave no directory behind; a
 * success must have written exactly the files it reports, inside it. Anything else is a finding.
 */
function extractChecked(bytes: Uint8Array): void {
  const arena = mkdtempSync(join(tmpdir(), 'fedtune-fuzz-tar-'));
  const path = join(arena, 'in.tar');
  const dest = join(arena, 'out');
  writeFileSync(path, bytes);
  try {
    const got = extractUstarBundle(path, dest, { maxBytes: 4096 });
    const written = readdirSync(dest).sort();
    if (JSON.stringify(written) !== JSON.stringify([...got.files].sort())) throw new Error(`extracted ${JSON.stringify(written)} but reported ${JSON.stringify(got.files)}`);
  } catch (e) {
    if (e instanceof ModelFormatError && existsSync(dest)) throw new Error(`refused (${e.message}) but left ${dest} behind`);
    throw e;
  } finally {
    const left = readdirSync(arena).filter((n) => n !== 'in.tar' && n !== 'out');
    rmSync(arena, { recursive: true, force: true });
    if (left.length) throw new Error(`wrote ${left.join(', ')} beside the target directory`);
  }
}

/** Every decoder target. `files` are the real inputs mutated by the file targets. */
export function decoderTargets(files: FuzzFiles = realInputs()): DecoderTarget<never>[] {
  const n = 300; // the update length the decoders are asked for (a server-side constant)
  const rng = seededRng(1);
  const valid = [
    encodeUpdate(Float32Array.from({ length: n }, (_, i) => Math.sin(i))),
    encodeUpdate(stochasticQuantize(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), 8, rng, UPDATE_QUANT_BLOCK)),
    encodeUpdate(stochasticQuantize(Float32Array.from({ length: n }, (_, i) => Math.sin(i)), 4, rng, UPDATE_QUANT_BLOCK)),
  ];
  const masked = encodeMasked(Uint32Array.from({ length: n }, (_, i) => i * 2654435761));
  const encodings = fc.oneof(fc.constantFrom(...UPDATE_ENCODINGS), fc.string({ maxLength: 8 }));
  const { definition } = loadProtos();
  const signed = Object.keys(definition['fedtune.v1.Coordinator'] as object).filter((name) => name !== 'Enroll').map((name) => `fedtune.v1.Coordinator/${name}`);
  const targets: DecoderTarget<unknown>[] = [
    {
      name: 'decodeUpdate (random bytes)',
      input: fc.tuple(encodings, fc.uint8Array({ maxLength: 1400 }), fc.integer({ min: 0, max: 400 })),
      run: typed(WireFormatError, ([enc, bytes, len]: [string, Uint8Array, number]) => decodeUpdate(enc, bytes, len)),
    },
    {
      name: 'decodeUpdate (mutated valid f32/q8/q4)',
      input: fc.tuple(fc.constantFrom('f32', 'q8', 'q4'), mutantOfAny(valid)),
      run: typed(WireFormatError, ([enc, bytes]: [string, Uint8Array]) => decodeUpdate(enc, bytes, n)),
    },
    {
      name: 'decodeMasked (mutated valid)',
      input: mutantOf(masked),
      run: typed(WireFormatError, (bytes: Uint8Array) => decodeMasked(bytes, n)),
    },
    {
      // what a peer controls is the request bytes; the server signs over exactly those, less auth
      name: 'signingPayloadFromWire (every signed method, random request bytes)',
      input: fc.tuple(fc.nat({ max: signed.length - 1 }), fc.uint8Array({ maxLength: 300 })),
      run: ([k, bytes]: [number, Uint8Array]) => {
        try {
          signingPayloadFromWire(signed[k], bytes);
          return 'decoded';
        } catch (e) {
          if (e instanceof WireFormatError) return 'refused';
          throw e;
        }
      },
    },
    {
      name: 'decodeAdapterFile (mutated real adapter)',
      input: mutantOf(files.adapter),
      run: typed(AdapterFileError, (bytes: Uint8Array) => decodeAdapterFile(bytes)),
    },
    {
      name: 'decodeAdapterFile (random bytes after a plausible header length)',
      input: fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.uint8Array({ maxLength: 200 })),
      run: typed(AdapterFileError, ([len, body]: [bigint, Uint8Array]) => {
        const b = new Uint8Array(8 + body.length);
        new DataView(b.buffer).setBigUint64(0, len, true);
        b.set(body, 8);
        return decodeAdapterFile(b);
      }),
    },
    {
      name: 'parseGguf + ggufToBase (mutated stories260K.gguf)',
      input: mutantOf(files.gguf),
      run: typed(ModelFormatError, (bytes: Uint8Array) => ggufToBase(parseGguf(bytes))),
    },
    {
      name: 'parseGguf + ggufConfig + readGgufWeights + tokenizer (mutated qwen2 Q4_K_M GGUF)',
      input: mutantOf(files.kquantGguf),
      run: typed(ModelFormatError, (bytes: Uint8Array) => {
        const f = parseGguf(bytes, 'fuzz.gguf');
        ggufConfig(f);
        readGgufWeights(f, 'native');
        ggufTextTokenizer(f);
      }),
    },
    {
      name: 'extractUstarBundle (mutated bundle, checksums fixed up or not)',
      input: fc.tuple(mutantOf(files.bundle), fc.boolean()),
      run: typed(ModelFormatError, ([bytes, fix]: [Uint8Array, boolean]) => extractChecked(fix ? fixChecksums(bytes, files.bundleHeaders) : bytes)),
    },
    {
      name: 'parseLlama2cCheckpoint (mutated stories260K.bin)',
      input: mutantOf(files.bin),
      run: typed(ModelFormatError, (bytes: Uint8Array) => parseLlama2cCheckpoint(bytes)),
    },
  ];
  return targets as DecoderTarget<never>[];
}
