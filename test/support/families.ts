/**
 * Test fixtures: tiny random-weight models of each supported family (Llama 3 with llama3 rope
 * scaling, SmolLM2 with a tied head, Qwen2.5 with q/k/v biases, Qwen3 with q/k norms and
 * headDim ≠ dim / heads) with a byte-level BPE tokenizer trained on Shakespeare, written as GGUF
 * files llama.cpp can load. Weights are scaled up so next-token distributions are peaked.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bpeTokenizerEntries,
  encodeGguf,
  ggufModelInput,
  llama3RopeFactors,
  randomBase,
  type GgufModelTensorType,
  type LlamaConfig,
  type LoadedBase,
} from '../../model/index.js';
import { corpus } from '../helpers.js';
import { LLAMA3_REGEX, QWEN2_REGEX, tokenizerJson, trainMerges } from '../model/bpe-train.js';

/** The llama3 rope scaling of the Llama 3 fixture (as Llama 3.1's, with a short original context so it matters). */
export const LLAMA3_SCALING = { factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContext: 64 } as const;

/** A family fixture's name. */
export type FamilyName = 'llama3' | 'smollm2' | 'qwen2' | 'qwen3';

/** What a family fixture holds. */
export interface FamilyFixture {
  readonly name: FamilyName;
  readonly loaded: LoadedBase;
  /** GGUF tokenizer keys. */
  readonly tokens: string[];
  readonly merges: string[];
  readonly tokenTypes: number[];
  readonly pre: string;
  readonly bosId?: number;
  readonly eosId: number;
  readonly addBos: boolean;
  /** tokenizer.json object for the HF layout. */
  readonly tokenizerJson: Record<string, unknown>;
  readonly specials: string[];
  /** tokenizer_config.json object for the HF layout. */
  readonly tokenizerConfig: Record<string, unknown>;
}

const QWEN_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
const LLAMA3_SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];
const SMOL_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];

let mergesCache: [string, string][] | undefined;
function merges(): [string, string][] {
  mergesCache ??= trainMerges(corpus('tinyshakespeare.txt').slice(0, 60_000), 240);
  return mergesCache;
}

/** The fixture of a family (random weights at `std`, seeded). */
export function family(name: FamilyName, seed = 1, std = 0.12, headStd = 0.3): FamilyFixture {
  const m = merges();
  const specials = name === 'llama3' ? LLAMA3_SPECIALS : name === 'smollm2' ? SMOL_SPECIALS : QWEN_SPECIALS;
  const regex = name === 'llama3' || name === 'smollm2' ? LLAMA3_REGEX : QWEN2_REGEX;
  const json = tokenizerJson(m, regex, specials) as { model: { vocab: Record<string, number> }; added_tokens: { id: number; content: string }[]; pre_tokenizer: unknown };
  if (name === 'smollm2') {
    // SmolLM's published pre-tokenizer: digits one by one, then GPT-2's ByteLevel regex
    json.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] };
  }
  const tokens: string[] = [];
  for (const [t, i] of Object.entries(json.model.vocab)) tokens[i] = t;
  for (const a of json.added_tokens) tokens[a.id] = a.content;
  const tokenTypes = tokens.map((t) => (specials.includes(t) ? 3 : 1));
  const id = (s: string): number => tokens.indexOf(s);
  const base = { nLayers: 2, vocabSize: tokens.length, seqLen: 256, normEps: 1e-6 } as const;
  // widths are multiples of 256 so every matrix can be written in K-quant blocks
  let config: LlamaConfig;
  if (name === 'llama3') {
    const headDim = 64;
    config = { ...base, arch: 'llama', ropeStyle: 'interleaved', dim: 256, hiddenDim: 512, nHeads: 4, nKvHeads: 2, sharedClassifier: false, normEps: 1e-5, ropeTheta: 500000, ropeFreqFactors: llama3RopeFactors(headDim, 500000, LLAMA3_SCALING) };
  } else if (name === 'smollm2') {
    config = { ...base, arch: 'llama', ropeStyle: 'interleaved', dim: 256, hiddenDim: 768, nHeads: 4, nKvHeads: 1, sharedClassifier: true, normEps: 1e-5, ropeTheta: 100000 };
  } else if (name === 'qwen2') {
    config = { ...base, arch: 'qwen2', ropeStyle: 'neox', dim: 256, hiddenDim: 512, nHeads: 4, nKvHeads: 2, sharedClassifier: true, ropeTheta: 1000000, attnBias: true };
  } else {
    config = { ...base, arch: 'qwen3', ropeStyle: 'neox', dim: 256, hiddenDim: 512, nHeads: 4, nKvHeads: 2, headDim: 128, sharedClassifier: true, ropeTheta: 1000000, qkNorm: true };
  }
  const loaded = randomBase(config, seed, { std, headStd, randomVectors: true });
  const isLlama3 = name === 'llama3';
  return {
    name,
    loaded,
    tokens,
    merges: m.map(([a, b]) => `${a} ${b}`),
    tokenTypes,
    pre: name === 'llama3' ? 'llama-bpe' : name === 'smollm2' ? 'smollm' : 'qwen2',
    bosId: isLlama3 ? id('<|begin_of_text|>') : id('<|endoftext|>'),
    eosId: isLlama3 ? id('<|eot_id|>') : name === 'smollm2' ? id('<|im_end|>') : id('<|im_end|>'),
    addBos: isLlama3,
    tokenizerJson: json as unknown as Record<string, unknown>,
    specials,
    tokenizerConfig: isLlama3
      ? { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', add_bos_token: true }
      : { bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', add_bos_token: false },
  };
}

/** A file type: one tensor type for every matrix, or `Q4_K_M` (llama.cpp's mix: Q6_K for attn_v, ffn_down and output, else Q4_K). */
export type FamilyFileType = GgufModelTensorType | 'Q4_K_M';

/** The tensor type of a GGUF tensor name in a file of `fileType`. */
export function tensorTypeIn(fileType: FamilyFileType, name: string): GgufModelTensorType {
  if (fileType !== 'Q4_K_M') return fileType;
  return /attn_v|ffn_down|^output\.|^token_embd/.test(name) ? 'Q6_K' : 'Q4_K';
}

/** GGUF bytes of a fixture with its matrices in `type` (norms and biases stay F32). */
export function familyGguf(f: FamilyFixture, type: FamilyFileType = 'F32'): Uint8Array {
  return encodeGguf(ggufModelInput(f.loaded, {
    name: f.name,
    typeOf: (name) => tensorTypeIn(type, name),
    tokenizer: bpeTokenizerEntries({ tokens: f.tokens, merges: f.merges, tokenTypes: f.tokenTypes, pre: f.pre, bosId: f.bosId, eosId: f.eosId, addBos: f.addBos }),
  }));
}

/** Write a fixture's GGUF into a fresh temp dir; returns the path. */
export function writeFamilyGguf(f: FamilyFixture, type: FamilyFileType = 'F32'): string {
  const dir = mkdtempSync(join(tmpdir(), `fedtune-${f.name}-`));
  const path = join(dir, `${f.name}-${type}.gguf`);
  writeFileSync(path, familyGguf(f, type));
  return path;
}
