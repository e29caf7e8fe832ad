import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { hfTokenizer, ModelFormatError, TokenTextStream } from '../../model/index.js';
import { addedId, AWKWARD, fixtureJson, invalidUtf8 } from './tokenizer-fixtures.js';

const QWEN_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
const LLAMA3_SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>'];

/** Llama 3's post-processor: ByteLevel, then a template putting <|begin_of_text|> before the text. */
function llama3PostProcessor(bosId: number): unknown {
  const bos = { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } };
  return { type: 'Sequence', processors: [
    { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    { type: 'TemplateProcessing', single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, bos, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [bosId], tokens: ['<|begin_of_text|>'] } } },
  ] };
}

describe('model/hf-tokenizer', function () {
  this.timeout(60_000);
  let root: string;
  before(() => { root = mkdtempSync(join(tmpdir(), 'fedtune-hf-')); });
  after(() => rmSync(root, { recursive: true, force: true }));
  const writeDir = (name: string, json: unknown, config?: unknown): string => {
    const dir = join(root, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), typeof json === 'string' ? json : JSON.stringify(json));
    if (config !== undefined) writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    return dir;
  };

  describe('Qwen2.5-style directory (bos_token null, eos "<|im_end|>")', () => {
    const json = fixtureJson('qwen2', QWEN_SPECIALS);
    const oracle = new HfTokenizer(json, {});
    const config = {
      add_bos_token: false, bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>',
      added_tokens_decoder: Object.fromEntries(json.added_tokens.map((a) => [String(a.id), { content: a.content, special: true }])),
    };

    it('gives the oracle\'s ids (with its own special-token handling) on awkward strings, no BOS', () => {
      const tok = hfTokenizer(writeDir('qwen', json, config));
      assert.equal(tok.kind, 'bpe');
      assert.equal(tok.addBos, false);
      for (const s of AWKWARD) assert.deepEqual([...tok.encode(s)], oracle.encode(s, { add_special_tokens: true }).ids, JSON.stringify(s));
    });

    it('has no BOS, starts windows at <|endoftext|>, stops at <|im_end|> and <|endoftext|> only', () => {
      const tok = hfTokenizer(writeDir('qwen', json, config));
      assert.equal(tok.bosId, -1);
      assert.equal(tok.eosId, addedId(json, '<|im_end|>'));
      assert.equal(tok.startId, addedId(json, '<|endoftext|>'));
      assert.ok(tok.isStop(addedId(json, '<|im_end|>')) && tok.isStop(addedId(json, '<|endoftext|>')));
      assert.ok(!tok.isStop(addedId(json, '<|im_start|>')));
      assert.throws(() => tok.encode('x', { bos: true }), RangeError);
    });

    it('the base model\'s config (eos "<|endoftext|>", { content } form) and a missing config work too', () => {
      const base = hfTokenizer(writeDir('qwen-base', json, { bos_token: null, eos_token: { content: '<|endoftext|>' } }));
      assert.equal(base.eosId, addedId(json, '<|endoftext|>'));
      assert.equal(base.startId, addedId(json, '<|endoftext|>'));
      const bare = hfTokenizer(writeDir('qwen-bare', json));
      assert.equal(bare.addBos, false);
      assert.equal(bare.startId, addedId(json, '<|endoftext|>'));
    });

    it('round-trips bytes exactly, including tokens holding partial UTF-8 sequences, and streams whole characters', () => {
      const tok = hfTokenizer(writeDir('qwen', json, config));
      for (const s of AWKWARD) assert.deepEqual(Buffer.from(tok.decodeBytes(tok.encode(s))), Buffer.from(s, 'utf8'), JSON.stringify(s));
      const s = 'x😀é中y';
      const ids = [...tok.encode(s)];
      assert.ok(ids.map((i) => tok.decodeBytes([i])).some(invalidUtf8));
      const stream = new TokenTextStream(tok);
      const texts = ids.map((i) => stream.push(i).text);
      assert.equal(texts.join('') + stream.flush(), s);
      assert.ok(!texts.join('').includes('\uFFFD'));
    });
  });

  describe('Llama 3-style directory (TemplateProcessing adds <|begin_of_text|>)', () => {
    const json = fixtureJson('llama-bpe', LLAMA3_SPECIALS);
    json.post_processor = llama3PostProcessor(addedId(json, '<|begin_of_text|>'));
    const oracle = new HfTokenizer(json, {});
    const config = { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' };

    it('adds BOS as the oracle\'s post-processor does, and not when asked not to', () => {
      const tok = hfTokenizer(writeDir('llama3', json, config));
      assert.equal(tok.addBos, true);
      assert.equal(tok.bosId, addedId(json, '<|begin_of_text|>'));
      for (const s of AWKWARD) {
        assert.deepEqual([...tok.encode(s)], oracle.encode(s, { add_special_tokens: true }).ids, JSON.stringify(s));
        assert.deepEqual([...tok.encode(s, { bos: false })], oracle.encode(s, { add_special_tokens: false }).ids, JSON.stringify(s));
      }
    });

    it('starts windows at BOS and stops at <|eot_id|> and <|end_of_text|>; add_bos_token false wins over the template', () => {
      const tok = hfTokenizer(writeDir('llama3', json, config));
      assert.equal(tok.startId, tok.bosId);
      assert.ok(tok.isStop(addedId(json, '<|eot_id|>')) && tok.isStop(addedId(json, '<|end_of_text|>')));
      assert.ok(!tok.isStop(tok.bosId));
      assert.equal(hfTokenizer(writeDir('llama3-nobos', json, { ...config, add_bos_token: false })).addBos, false);
    });

    it('matches special-token strings whole by default and as text with special: false', () => {
      const tok = hfTokenizer(writeDir('llama3', json, config));
      const s = 'a<|eot_id|>b';
      assert.ok([...tok.encode(s, { bos: false })].includes(addedId(json, '<|eot_id|>')));
      const asText = tok.encode(s, { bos: false, special: false });
      assert.ok(![...asText].includes(addedId(json, '<|eot_id|>')));
      assert.equal(tok.decode(asText), s);
    });
  });

  it('missing or unreadable tokenizer.json, or a config naming unknown tokens, throw ModelFormatError naming the directory and file', () => {
    const empty = join(root, 'empty');
    mkdirSync(empty, { recursive: true });
    assert.throws(() => hfTokenizer(empty), (e: Error) => e instanceof ModelFormatError && e.message.includes(empty) && /tokenizer\.json/.test(e.message) && /ENOENT/.test(e.message));
    const bad = writeDir('bad', '{ not json');
    assert.throws(() => hfTokenizer(bad), (e: Error) => e instanceof ModelFormatError && e.message.includes(bad) && /tokenizer\.json .*not valid JSON/.test(e.message));
    const json = fixtureJson('qwen2', QWEN_SPECIALS);
    const unknown = writeDir('unknown-eos', json, { eos_token: '<|nope|>' });
    assert.throws(() => hfTokenizer(unknown), (e: Error) => e instanceof ModelFormatError && e.message.includes(unknown) && /<\|nope\|>/.test(e.message));
    assert.throws(() => hfTokenizer(''), TypeError);
  });
});

