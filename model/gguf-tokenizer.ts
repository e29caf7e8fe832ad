/**
 * The tokenizer inside a GGUF file's metadata (`tokenizer.ggml.*`): `llama` vocabularies become
 * the llama2.c SentencePiece {@link Tokenizer}, `gpt2` vocabularies a byte-level {@link BpeTokenizer}
 * with llama.cpp's defaults for BOS and the pre-tokenizer.
 */
import { BpeTokenizer } from './bpe-tokenizer.js';
import { ModelFormatError } from './checkpoint.js';
import type { GgufFile, GgufValue } from './gguf.js';
import type { TextTokenizer } from './text-tokenizer.js';
import { BOS, EOS, Tokenizer } from './tokenizer.js';

/**
 * GGUF `tokenizer.ggml.pre` values that llama.cpp (llama-vocab.cpp) gives `add_bos = true` when
 * `tokenizer.ggml.add_bos_token` is absent (of the pre-tokenizers fedtune knows); every other
 * gpt2-type vocabulary defaults to no BOS.
 */
export const GGUF_PRE_ADDS_BOS: readonly string[] = ['llama3', 'llama-v3', 'llama-bpe'];
/** llama.cpp's spellings of the pre-tokenizers fedtune knows under another name. */
const PRE_ALIASES: Readonly<Record<string, string>> = { 'gpt-2': 'gpt2', 'llama-v3': 'llama-bpe', llama3: 'llama-bpe', 'deepseek-r1-qwen': 'qwen2' };

/**
 * The tokenizer of a GGUF llama model (`tokenizer.ggml.tokens` and `.scores`): "▁" becomes a
 * space, byte tokens keep their "<0xHH>" text, and BOS/EOS get llama2.c's "\n<s>\n" form so
 * the pieces match tok*.bin. Refuses vocabularies whose BOS/EOS/byte ids differ from llama2.c's.
 */
export function ggufTokenizer(file: GgufFile): Tokenizer {
  const src = file.source;
  const tokens = stringArray(file, 'tokenizer.ggml.tokens');
  const scores = file.metadata.get('tokenizer.ggml.scores');
  const model = file.metadata.get('tokenizer.ggml.model');
  if (model !== undefined && model !== 'llama') throw new ModelFormatError(`${src} has tokenizer model "${String(model)}"; ggufTokenizer reads only the llama (SentencePiece) tokenizer`);
  const sc = Array.isArray(scores) && scores.every((s) => typeof s === 'number') ? (scores as number[]) : new Array<number>(tokens.length).fill(0);
  for (const [key, want] of [['tokenizer.ggml.bos_token_id', BOS], ['tokenizer.ggml.eos_token_id', EOS]] as const) {
    const id = file.metadata.get(key);
    if (id !== undefined && Number(id) !== want) throw new ModelFormatError(`${src}: ${key} is ${String(id)}, but fedtune's tokenizer needs ${want}`);
  }
  for (let b = 0; b < 256 && tokens.length >= 259; b++) {
    const want = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    if (tokens[3 + b] !== want) throw new ModelFormatError(`${src}: token ${3 + b} is "${tokens[3 + b]}", not the byte token ${want} fedtune's tokenizer expects`);
  }
  const pieces = tokens.map((t, i) => Buffer.from(i === BOS || i === EOS ? `\n${t}\n` : t.replaceAll('\u2581', ' '), 'utf8'));
  return Tokenizer.fromPieces(pieces.map((p) => new Uint8Array(p.buffer, p.byteOffset, p.byteLength)), sc, src);
}

/**
 * The tokenizer of any GGUF base: `tokenizer.ggml.model` "llama" (or absent) → {@link ggufTokenizer};
 * "gpt2" → a {@link BpeTokenizer} from `tokens`, `merges`, `token_type` (control and user-defined
 * tokens matched whole), `pre`, and the `bos` / `eos` / `eot` / `eom` / `padding` token ids, with
 * `add_bos_token` defaulting as llama.cpp does ({@link GGUF_PRE_ADDS_BOS}). Stop tokens are EOS,
 * EOT, EOM and "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>" when present.
 */
export function ggufTextTokenizer(file: GgufFile): TextTokenizer {
  if (file === null || typeof file !== 'object' || !(file.metadata instanceof Map)) throw new TypeError('ggufTextTokenizer: file must be a parsed GgufFile (parseGguf)');
  const model = file.metadata.get('tokenizer.ggml.model');
  if (model === undefined || model === 'llama') return ggufTokenizer(file);
  if (model === 'gpt2') return ggufBpeTokenizer(file);
  throw new ModelFormatError(`${file.source} has tokenizer model "${String(model)}"; only llama (SentencePiece) and gpt2 (byte-level BPE) tokenizers are supported`);
}

function ggufBpeTokenizer(file: GgufFile): BpeTokenizer {
  const src = file.source;
  const m = file.metadata;
  const tokens = stringArray(file, 'tokenizer.ggml.tokens');
  const merges = stringArray(file, 'tokenizer.ggml.merges');
  const types = m.get('tokenizer.ggml.token_type');
  if (types !== undefined && (!Array.isArray(types) || types.length !== tokens.length || !types.every((t) => typeof t === 'number'))) {
    throw new ModelFormatError(`${src}: tokenizer.ggml.token_type is not an array of ${tokens.length} integers, one per token`);
  }
  const rawPre = m.get('tokenizer.ggml.pre');
  if (typeof rawPre !== 'string') throw new ModelFormatError(`${src} lacks the string tokenizer.ggml.pre naming its pre-tokenizer`);
  const pre = PRE_ALIASES[rawPre] ?? rawPre;
  const id = (key: string): number | undefined => {
    const v = m.get(`tokenizer.ggml.${key}`);
    if (v === undefined) return undefined;
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= tokens.length) {
      throw new ModelFormatError(`${src}: tokenizer.ggml.${key} is ${String(v)}, not a token id in [0, ${tokens.length})`);
    }
    return n;
  };
  const bosId = id('bos_token_id');
  const eosId = id('eos_token_id');
  const stopIds = [id('eot_token_id'), id('eom_token_id')].filter((x): x is number => x !== undefined);
  id('padding_token_id'); // checked only: padding plays no part in encoding or generation
  const addBosKey = m.get('tokenizer.ggml.add_bos_token');
  if (addBosKey !== undefined && typeof addBosKey !== 'boolean') throw new ModelFormatError(`${src}: tokenizer.ggml.add_bos_token is not a boolean`);
  const addBos = addBosKey ?? GGUF_PRE_ADDS_BOS.includes(rawPre);
  if (addBos && bosId === undefined) throw new ModelFormatError(`${src} asks for BOS to be added but has no tokenizer.ggml.bos_token_id`);
  try {
    return BpeTokenizer.fromGgufMetadata({ tokens, merges, tokenTypes: types as number[] | undefined, pre, bosId, eosId, addBos, stopIds });
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) throw new ModelFormatError(`${src} has an unusable gpt2 tokenizer: ${e.message}`);
    throw e;
  }
}

function stringArray(file: GgufFile, key: string): string[] {
  const v: GgufValue | undefined = file.metadata.get(key);
  if (!Array.isArray(v) || !v.every((t) => typeof t === 'string')) throw new ModelFormatError(`${file.source} lacks a string array ${key}`);
  return v as string[];
}
