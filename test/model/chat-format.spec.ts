import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { detectChatFormat, detectChatStyle, pythonStrip, QWEN25_DEFAULT_SYSTEM, renderChat, tokenizeChat, type ChatFormat, type ChatMessage } from '../../model/index.js';
import { chatTokenizers, CHATML_SPECIALS, GEMMA2_TEMPLATE, LLAMA3_SPECIALS, LLAMA3_TEMPLATE, QWEN2_TEMPLATE, QWEN25_TEMPLATE } from './chat-fixtures.js';

/** The three real templates, each with the format and options our detector derives from it. */
const TEMPLATES = [
  { name: 'Qwen2.5-Instruct', template: QWEN25_TEMPLATE },
  { name: 'Qwen2-Instruct', template: QWEN2_TEMPLATE },
  { name: 'Llama-3-8B-Instruct', template: LLAMA3_TEMPLATE },
].map((t) => ({ ...t, style: detectChatStyle(t.template)!, jinja: new Template(t.template) }));

function jinja(t: (typeof TEMPLATES)[number], messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  return t.jinja.render({ messages: messages.map((m) => ({ role: m.role, content: m.content })), add_generation_prompt: addGenerationPrompt, bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' });
}

const S = (content: string): ChatMessage => ({ role: 'system', content });
const U = (content: string): ChatMessage => ({ role: 'user', content });
const A = (content: string): ChatMessage => ({ role: 'assistant', content });
const CONVERSATIONS: ChatMessage[][] = [
  [U('Hi')],
  [U('Hi'), A('Hello! How can I help?')],
  [S('You are terse.'), U('2+2?'), A('4')],
  [S('Be kind.'), U('one'), A('two'), U('three'), A('four'), U('five')],
  [U('Ünïcödé café 日本語のテキスト 👩‍👩‍👧 🇫🇷'), A('Ελληνικά — Русский текст ✓')],
  [U('line one\nline two\n\n\nline five'), A('```ts\nconst x = 1;\n```\n')],
  [U('  padded  '), A('\n\n leading newlines and trailing spaces   \n'), U('\ttabs\t')],
  [U(''), A('')],
  [U('first'), S('a second system message, mid-conversation'), A('ok')],
  [U("quotes ' \" and braces {{ x }} {% if %} <not special>"), A('<|im_start|> and <|eot_id|> as text?')],
];

describe('model/chat-format', function () {
  this.timeout(60_000);

  describe('detectChatStyle / detectChatFormat', () => {
    it('recognises the real templates, and the default system message of Qwen2 and Qwen2.5', () => {
      assert.deepEqual(detectChatStyle(QWEN25_TEMPLATE), { format: 'chatml', defaultSystem: QWEN25_DEFAULT_SYSTEM });
      assert.deepEqual(detectChatStyle(QWEN2_TEMPLATE), { format: 'chatml', defaultSystem: 'You are a helpful assistant.' });
      assert.deepEqual(detectChatStyle(LLAMA3_TEMPLATE), { format: 'llama3' });
      assert.equal(detectChatFormat(QWEN25_TEMPLATE), 'chatml');
      assert.equal(detectChatFormat(LLAMA3_TEMPLATE), 'llama3');
      const plain = String.raw`{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;
      assert.deepEqual(detectChatStyle(plain), { format: 'chatml' });
    });
    it('gives undefined for a template of another kind, even when the vocabulary has ChatML tokens', () => {
      assert.equal(detectChatFormat(GEMMA2_TEMPLATE, CHATML_SPECIALS), undefined);
    });
    it('falls back to the special tokens without a template', () => {
      const { chatml, llama3 } = chatTokenizers();
      assert.equal(detectChatFormat(undefined, chatml.specialTokens()), 'chatml');
      assert.equal(detectChatFormat('', LLAMA3_SPECIALS), 'llama3');
      assert.equal(detectChatFormat(undefined, llama3.specialTokens()), 'llama3');
      assert.equal(detectChatFormat(undefined, ['<s>', '</s>']), undefined);
      assert.equal(detectChatFormat(undefined), undefined);
    });
  });

  describe('renderChat equals the real templates rendered by @huggingface/jinja', () => {
    for (const t of TEMPLATES) {
      it(`${t.name}: fixed conversations, with and without the generation prompt`, () => {
        for (const conv of CONVERSATIONS) {
          for (const addGenerationPrompt of [false, true]) {
            assert.equal(renderChat(conv, t.style.format, { addGenerationPrompt, defaultSystem: t.style.defaultSystem }), jinja(t, conv, addGenerationPrompt), JSON.stringify(conv));
          }
        }
      });
      it(`${t.name}: random conversations`, () => {
        // Python's trim (the real runtime's) and JS's differ on U+001C–U+001F, U+0085 and U+FEFF: left out here, checked below
        const text = fc.string({ unit: 'grapheme', maxLength: 30 }).map((s) => s.replace(/[\x1c-\x1f\x85\ufeff]/g, ''));
        const ws = fc.constantFrom('', ' ', '\n', '\n\n', '\t', ' \n ');
        const content = fc.tuple(ws, text, ws).map(([a, b, c]) => a + b + c);
        const msg = fc.record({ role: fc.constantFrom('system', 'user', 'assistant'), content }) as fc.Arbitrary<ChatMessage>;
        fc.assert(fc.property(fc.array(msg, { minLength: 1, maxLength: 6 }), fc.boolean(), (conv, gen) => {
          assert.equal(renderChat(conv, t.style.format, { addGenerationPrompt: gen, defaultSystem: t.style.defaultSystem }), jinja(t, conv, gen));
        }), { numRuns: 300 });
      });
    }
    it('trims Llama 3 content as Python\'s str.strip does (what Jinja\'s trim is in transformers)', () => {
      // Python: str.isspace() is true for U+001C–U+001F, U+0085, U+3000 and false for U+FEFF
      assert.equal(pythonStrip('\x1c\x1d\x1e\x1f\x85\u3000 a b\u2029\n'), 'a b');
      assert.equal(pythonStrip('\ufeffa\ufeff'), '\ufeffa\ufeff');
      assert.equal(renderChat([U('\x1fHi\x85')], 'llama3'), '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>');
    });
    it('refuses malformed messages with TypeErrors naming the argument', () => {
      assert.throws(() => renderChat([{ role: 'tool', content: 'x' } as unknown as ChatMessage], 'chatml'), /renderChat: messages\[0\]\.role must be system, user or assistant/);
      assert.throws(() => renderChat([{ role: 'user', content: 3 } as unknown as ChatMessage], 'chatml'), /renderChat: messages\[0\]\.content must be a string/);
      assert.throws(() => renderChat([U('x')], 'gemma' as ChatFormat), /renderChat: format must be 'chatml' or 'llama3'/);
      assert.throws(() => renderChat('hi' as unknown as ChatMessage[], 'chatml'), /renderChat: messages must be an array/);
    });
  });

  describe('tokenizeChat', () => {
    const { json, chatml, llama3 } = chatTokenizers();
    const cases = [
      { t: TEMPLATES[0]!, tok: chatml, oracle: new HfTokenizer(json.chatml, {}), end: '<|im_end|>' },
      { t: TEMPLATES[2]!, tok: llama3, oracle: new HfTokenizer(json.llama3, {}), end: '<|eot_id|>' },
    ];
    for (const { t, tok, oracle, end } of cases) {
      const fmt = t.style.format;
      const opts = { defaultSystem: t.style.defaultSystem };
      it(`${t.name}: ids are the Hugging Face tokenizer's ids of the template's text`, () => {
        for (const conv of CONVERSATIONS) {
          const { ids, lossMask } = tokenizeChat(tok, conv, fmt, opts);
          assert.deepEqual([...ids], oracle.encode(jinja(t, conv, false), { add_special_tokens: false }).ids, JSON.stringify(conv));
          assert.equal(lossMask.length, ids.length);
        }
      });
      it(`${t.name}: the scored runs decode to exactly each assistant reply followed by ${end}`, () => {
        // replies that do not start with whitespace cannot merge with the header's newline
        const conv = [S('sys'), U('Question one?'), A('Answer one, with 日本語.'), U('Two?'), A('Answer\ntwo\n\nends here.')];
        const { ids, lossMask } = tokenizeChat(tok, conv, fmt, opts);
        const runs: string[] = [];
        const rest: number[] = [];
        for (let i = 0; i < ids.length; i++) {
          if (lossMask[i]) {
            if (i === 0 || !lossMask[i - 1]) runs.push('');
            runs[runs.length - 1] += tok.decode([ids[i]!]);
          } else rest.push(ids[i]!);
        }
        assert.deepEqual(runs, ['Answer one, with 日本語.' + end, 'Answer\ntwo\n\nends here.' + end]);
        assert.ok(!tok.decode(rest).includes('Answer'), 'nothing of a reply is left unscored');
      });
      it(`${t.name}: a token straddling a reply's edge is scored, as in Hugging Face's char_to_token mask`, () => {
        // HF marks every token from char_to_token(first char of the span) to char_to_token(last char)
        let straddles = 0;
        for (const conv of [[U('q'), A('\n\n\nafter newlines')], [U('q'), A('  two spaces')], [U('q'), A('x')], [U('q'), A('')]]) {
          const text = jinja(t, conv, false);
          const reply = pythonStripIf(fmt, conv[1]!.content) + end;
          const start = Buffer.byteLength(text.slice(0, text.lastIndexOf(reply)));
          const stop = start + Buffer.byteLength(reply);
          const { ids, lossMask } = tokenizeChat(tok, conv, fmt, opts);
          let b = 0;
          const expected = [...ids].map((id) => {
            const len = tok.decodeBytes([id]).length; // token byte spans, as HF's offsets
            const hit = b < stop && b + len > start;
            if (hit && b < start) straddles++;
            b += len;
            return hit ? 1 : 0;
          });
          assert.deepEqual([...lossMask], expected, JSON.stringify(conv));
          assert.ok(lossMask.includes(1));
        }
        // ChatML's header newline merges with a reply's leading newlines ("\n" + "\n\n\n" → "\n\n" "\n\n")
        if (fmt === 'chatml') assert.ok(straddles > 0, 'the straddling case was exercised');
      });
    }
    it('a reply with weight 0 is rendered but not scored; system and user turns never are', () => {
      const conv: ChatMessage[] = [U('a'), { role: 'assistant', content: 'skip me', weight: 0 }, U('b'), A('keep me')];
      const { ids, lossMask } = tokenizeChat(chatml, conv, 'chatml');
      assert.equal(chatml.decode(ids), renderChat(conv, 'chatml'));
      assert.equal(chatml.decode(ids.filter((_, i) => lossMask[i] === 1)), 'keep me<|im_end|>');
      assert.deepEqual([...tokenizeChat(chatml, [S('s'), U('u')], 'chatml').lossMask].filter((x) => x), []);
    });
    it('refuses a non-tokenizer, and a vocabulary without the format\'s special tokens', () => {
      assert.throws(() => tokenizeChat({} as never, [U('x')], 'chatml'), /tokenizeChat: tokenizer must be a TextTokenizer/);
      assert.throws(() => tokenizeChat(chatml, [U('x')], 'llama3'), /tokenizeChat: the tokenizer has no special token <\|begin_of_text\|>, <\|start_header_id\|>, <\|end_header_id\|>, <\|eot_id\|>, so it cannot encode the llama3 format/);
    });
  });
});

function pythonStripIf(fmt: ChatFormat, s: string): string {
  return fmt === 'llama3' ? s.trim() : s;
}
