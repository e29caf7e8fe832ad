import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { BOS, EOS, ggufTextTokenizer, ModelFormatError, parseGguf, Tokenizer, TokenTextStream, type TextTokenizer } from '../../model/index.js';
import { MODEL, realModel } from '../helpers.js';
import { addedId, AWKWARD, fixtureGguf, fixtureJson, invalidUtf8, type FixturePre } from './tokenizer-fixtures.js';

const CASES: { pre: FixturePre; specials: string[] }[] = [
  { pre: 'qwen2', specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] },
  { pre: 'llama-bpe', specials: ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>'] },
  { pre: 'smollm', specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] },
];

describe('model/gguf-tokenizer', function () {
  this.timeout(60_000);

  for (const { pre, specials } of CASES) {
    describe(`gpt2 vocabulary, pre ${pre}`, () => {
      const json = fixtureJson(pre, specials);
      const oracle = new HfTokenizer(json, {});
      const llama3 = pre === 'llama-bpe';
      const file = fixtureGguf(json, llama3 ? { pre, bos: '<|begin_of_text|>', eos: '<|end_of_text|>', eot: '<|eot_id|>' } : { pre, eos: '<|endoftext|>', pad: '<|endoftext|>' });
      const tok = ggufTextTokenizer(file);

      it('gives the oracle\'s ids on awkward strings (special-token strings matched whole)', () => {
        assert.equal(tok.kind, 'bpe');
        for (const s of AWKWARD) assert.deepEqual([...tok.encode(s, { bos: false })], oracle.encode(s, { add_special_tokens: false }).ids, JSON.stringify(s));
      });

      it('adds BOS as llama.cpp does when add_bos_token is absent: for llama-bpe, not for qwen2 / smollm', () => {
        assert.equal(tok.addBos, llama3);
        const ids = [...tok.encode('hi there')];
        const plain = oracle.encode('hi there', { add_special_tokens: false }).ids;
        assert.deepEqual(ids, llama3 ? [addedId(json, '<|begin_of_text|>'), ...plain] : plain);
        if (llama3) {
          assert.deepEqual([...tok.encode('hi there', { bos: false })], plain);
          assert.equal(ggufTextTokenizer(fixtureGguf(json, { pre, bos: '<|begin_of_text|>', addBos: false })).addBos, false);
        } else {
          assert.equal(ggufTextTokenizer(fixtureGguf(json, { pre, bos: '<|im_start|>', addBos: true })).encode('x')[0], addedId(json, '<|im_start|>'));
        }
      });

      it('starts windows at BOS, else at <|endoftext|>; stops at EOS, EOT and the end-of-turn texts only', () => {
        const id = (t: string): number => addedId(json, t);
        if (llama3) {
          assert.equal(tok.bosId, id('<|begin_of_text|>'));
          assert.equal(tok.startId, id('<|begin_of_text|>'));
          assert.ok(tok.isStop(id('<|end_of_text|>')) && tok.isStop(id('<|eot_id|>')));
          assert.ok(!tok.isStop(id('<|begin_of_text|>')));
        } else {
          assert.equal(tok.bosId, -1);
          assert.equal(tok.startId, id('<|endoftext|>'));
          assert.ok(tok.isStop(id('<|endoftext|>')) && tok.isStop(id('<|im_end|>')));
          assert.ok(!tok.isStop(id('<|im_start|>')));
        }
        for (const t of tok.encode('plain words 123', { bos: false })) assert.ok(!tok.isStop(t));
        assert.deepEqual(tok.specialTokens().map((s) => s.text).sort(), [...specials].sort());
      });

      it('decodeBytes round-trips bytes exactly, also token by token through partial UTF-8 sequences', () => {
        for (const s of AWKWARD) {
          const ids = tok.encode(s, { bos: false });
          assert.deepEqual(Buffer.from(tok.decodeBytes(ids)), Buffer.from(s, 'utf8'), JSON.stringify(s));
          assert.equal(tok.decode(ids), s);
        }
        const s = '😀é中';
        const ids = [...tok.encode(s, { bos: false })];
        const pieces = ids.map((i) => tok.decodeBytes([i]));
        assert.ok(pieces.some(invalidUtf8), 'some token holds a partial UTF-8 sequence');
        assert.deepEqual(Buffer.concat(pieces), Buffer.from(s, 'utf8'));
      });

      it('streams text only once a character is complete', () => {
        const s = 'a😀é中b';
        const stream = new TokenTextStream(tok);
        const texts = [...tok.encode(s, { bos: false })].map((i) => stream.push(i).text);
        assert.equal(texts.join('') + stream.flush(), s);
        assert.ok(texts.every((t) => !t.includes('\uFFFD')), `no replacement characters: ${JSON.stringify(texts)}`);
        assert.ok(texts.includes(''), 'a token ending inside a character yields no text yet');
      });
    });
  }

  it('refuses unknown tokenizer models and pre-tokenizers, and missing merges, naming the file', () => {
    const json = fixtureJson('qwen2', ['<|endoftext|>']);
    assert.throws(() => ggufTextTokenizer(fixtureGguf(json, { pre: 'no-such-pre', eos: '<|endoftext|>' })), (e: Error) => e instanceof ModelFormatError && /fixture\.gguf/.test(e.message) && /no-such-pre/.test(e.message));
    const f = fixtureGguf(json, { pre: 'qwen2' });
    f.metadata.delete('tokenizer.ggml.merges');
    assert.throws(() => ggufTextTokenizer(f), (e: Error) => e instanceof ModelFormatError && /fixture\.gguf lacks a string array tokenizer\.ggml\.merges/.test(e.message));
    const g = fixtureGguf(json, { pre: 'qwen2' });
    g.metadata.set('tokenizer.ggml.model', 't5');
    assert.throws(() => ggufTextTokenizer(g), (e: Error) => e instanceof ModelFormatError && /"t5"/.test(e.message));
    const h = fixtureGguf(json, { pre: 'qwen2' });
    h.metadata.set('tokenizer.ggml.eos_token_id', 1 << 20);
    assert.throws(() => ggufTextTokenizer(h), (e: Error) => e instanceof ModelFormatError && /eos_token_id/.test(e.message));
  });

  describe('llama (SentencePiece) vocabulary', () => {
    it('is the llama2.c tokenizer: BOS added, windows start at BOS, BOS and EOS stop, golden prompt ids', async () => {
      const { golden } = await realModel();
      const tok: TextTokenizer = ggufTextTokenizer(parseGguf(readFileSync(MODEL.gguf), MODEL.gguf));
      assert.ok(tok instanceof Tokenizer);
      assert.equal(tok.kind, 'sentencepiece');
      assert.deepEqual([...tok.encode(golden.prompt)], golden.prompt_ids);
      assert.equal(golden.prompt_ids[0], BOS);
      assert.equal(tok.startId, BOS);
      assert.ok(tok.isStop(BOS) && tok.isStop(EOS) && !tok.isStop(3 + 65));
    });

    it('streams byte-fallback pieces as whole characters, with run.c\'s dummy space dropped after BOS', async () => {
      const { tokenizer } = await realModel();
      const s = 'Lily 😀 naïve';
      const ids = [...tokenizer.encode(s)];
      const stream = new TokenTextStream(tokenizer, ids[0]);
      const texts = ids.slice(1).map((i) => stream.push(i).text);
      assert.equal(texts.join('') + stream.flush(), s);
      assert.ok(texts.every((t) => !t.includes('\uFFFD')));
      assert.deepEqual(Buffer.from(tokenizer.decodeBytes(ids)), Buffer.from(s, 'utf8'));
    });
  });
});
