import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Tokenizer } from '@huggingface/tokenizers';
import { BpeTokenizer } from '../../model/index.js';
import { corpus } from '../helpers.js';
import { LLAMA3_REGEX, QWEN2_REGEX, tokenizerJson, trainMerges } from './bpe-train.js';

const SAMPLES = ' Ünïcödé café naïve 日本語のテキスト 中文测试 👩‍👩‍👧 🇫🇷 Ελληνικά Русский текст 1234567 2024 123 12 99 100 don\'t I\'M';
const AWKWARD = [
  '', 'hello', ' hello', '   leading', 'a  b   c    d', '12345678901', 'x1y22z333', '!!!...???', 'a\nb\n\n\nc',
  '\t\ttabs\t', ' \n \n', "I'M don't we'LL they'Re", 'café résumé', '日本語のテキスト', '👩‍👩‍👧‍👦 family', '🇫🇷🇩🇪',
  'a<|im_start|>user\nhi<|im_end|>', '<|endoftext|><|endoftext|>', '<|begin_of_text|>x', 'trailing   ', '\r\nwin\r\n',
];

describe('BpeTokenizer against @huggingface/tokenizers', function () {
  this.timeout(300_000);
  const text = corpus('tinyshakespeare.txt').slice(0, 60_000) + SAMPLES.repeat(60);
  const merges = trainMerges(text, 400);
  for (const [name, regex, specials] of [
    ['qwen2', QWEN2_REGEX, ['<|endoftext|>', '<|im_start|>', '<|im_end|>']],
    ['llama-bpe', LLAMA3_REGEX, ['<|begin_of_text|>', '<|end_of_text|>']],
  ] as const) {
    describe(name, () => {
      const json = tokenizerJson(merges, regex, [...specials]);
      const oracle = new Tokenizer(json, {});
      const ours = BpeTokenizer.fromTokenizerJson(json);
      const theirs = (s: string): number[] => oracle.encode(s, { add_special_tokens: false }).ids;

      it('gives the oracle\'s ids on awkward strings', () => {
        for (const s of AWKWARD) assert.deepEqual([...ours.encode(s)], theirs(s), JSON.stringify(s));
      });
      it('gives the oracle\'s ids on random unicode strings, and round-trips them', () => {
        fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }), (a, b) => {
          const s = a + ' ' + b;
          assert.deepEqual([...ours.encode(s)], theirs(s));
          assert.equal(ours.decode(ours.encode(s)), s);
        }), { numRuns: 300 });
      });
      it('gives the oracle\'s ids on random English-like text, where many merges apply', () => {
        const piece = fc.constantFrom('the', ' the', 'and', ' king', 'thou', ' ', '  ', '\n', "'s", "'LL", '123', '4', ',', '!?', 'é', '中', '😀', 'ing', 'er');
        fc.assert(fc.property(fc.array(piece, { maxLength: 30 }), (ps) => {
          const s = ps.join('');
          assert.deepEqual([...ours.encode(s)], theirs(s));
        }), { numRuns: 300 });
      });
      it('gives the oracle\'s ids on one long word without spaces', () => {
        const s = 'thethouandkingering'.repeat(1000);
        assert.deepEqual([...ours.encode(s)], theirs(s));
      });
      it('decodes to the same text as the oracle and round-trips', () => {
        for (const s of AWKWARD) {
          const ids = ours.encode(s);
          assert.equal(ours.decode(ids), s);
          if (ids.length > 0) assert.equal(ours.decode(ids), oracle.decode([...ids])); // the oracle refuses an empty list
        }
      });
      it('leaves special-token strings as text when special is false', () => {
        const s = `x${specials[0]}y`;
        const ids = ours.encode(s, { special: false });
        assert.ok(ids.length > 3);
        assert.equal(ours.decode(ids), s);
      });
      it('decodeBytes returns exact bytes when a token split cuts a multi-byte character', () => {
        const s = '😀é中';
        const ids = ours.encode(s);
        const bytes = new TextEncoder().encode(s);
        let joined: number[] = [];
        for (let k = 0; k < ids.length; k++) joined = joined.concat([...ours.decodeBytes([ids[k]!])]);
        assert.deepEqual(joined, [...bytes]);
        assert.ok(ids.length > 3, 'the tiny vocabulary splits these characters across tokens');
      });
      it('encodes 1 MB of text without hanging', () => {
        const big = corpus('tinyshakespeare.txt').slice(0, 1_000_000);
        const t0 = performance.now();
        const ids = ours.encode(big);
        console.log(`    ${name}: 1 MB → ${ids.length} ids in ${(performance.now() - t0).toFixed(0)} ms`);
        assert.equal(ours.decode(ids), big);
      });
    });
  }
  it('refuses an unknown pre with the known ones listed', () => {
    assert.throws(() => BpeTokenizer.fromGgufMetadata({ tokens: ['a'], merges: [], pre: 'nope' }), /known ones are qwen2, llama-bpe, smollm/);
  });
  it('builds from GGUF metadata with the same ids as from tokenizer.json', () => {
    const json = tokenizerJson(merges, QWEN2_REGEX, ['<|endoftext|>']) as { model: { vocab: Record<string, number> } };
    const tokens: string[] = [];
    for (const [t, i] of Object.entries(json.model.vocab)) tokens[i] = t;
    tokens.push('<|endoftext|>');
    const types = tokens.map((_, i) => (i === tokens.length - 1 ? 3 : 1));
    const g = BpeTokenizer.fromGgufMetadata({ tokens, merges: merges.map(([a, b]) => `${a} ${b}`), tokenTypes: types, pre: 'qwen2', eosId: tokens.length - 1 });
    const j = BpeTokenizer.fromTokenizerJson(json);
    const s = 'Hello 123 <|endoftext|> world';
    assert.deepEqual([...g.encode(s)], [...j.encode(s)]);
    assert.equal(g.eosId, tokens.length - 1);
  });
});
