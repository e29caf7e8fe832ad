import assert from 'node:assert/strict';
import { chatTrainingStream, ChatDataError, parseChatJsonl, renderChat, tokenizeChat } from '../../model/index.js';
import { chatTokenizers } from './chat-fixtures.js';

const line = (o: unknown): string => JSON.stringify(o);

describe('model/chat-data', () => {
  it('parses conversations, skipping blank lines and tolerating CRLF, a BOM and extra top-level keys', () => {
    const text = '\ufeff' + [
      line({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }),
      '',
      '   ',
      line({ id: 7, messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'q' }, { role: 'assistant', content: 'a', weight: 0 }] }),
    ].join('\r\n') + '\n';
    assert.deepEqual(parseChatJsonl(text, 'chats.jsonl'), [
      { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
      { messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'q' }, { role: 'assistant', content: 'a', weight: 0 }] },
    ]);
    assert.deepEqual(parseChatJsonl(''), []);
  });

  it('names the source, the line and the fault of a bad line', () => {
    const ok = line({ messages: [{ role: 'user', content: 'x' }] });
    const cases: [string, RegExp][] = [
      ['{"messages": [', /^d\.jsonl line 3: not valid JSON/],
      ['[1, 2]', /^d\.jsonl line 3: expected a JSON object, got an array/],
      ['"text"', /line 3: expected a JSON object, got string/],
      [line({ msgs: [] }), /line 3: "messages" must be an array, got nothing/],
      [line({ messages: {} }), /line 3: "messages" must be an array, got object/],
      [line({ messages: [] }), /line 3: "messages" is empty/],
      [line({ messages: ['hi'] }), /line 3: messages\[0\] must be an object, got string/],
      [line({ messages: [{ role: 'user', content: 'a' }, { role: 'tool', content: 'b' }] }), /line 3: messages\[1\]\.role must be "system", "user" or "assistant", got "tool"/],
      [line({ messages: [{ content: 'b' }] }), /line 3: messages\[0\]\.role must be .* got nothing/],
      [line({ messages: [{ role: 'user', content: null }] }), /line 3: messages\[0\]\.content must be a string, got null/],
      [line({ messages: [{ role: 'user' }] }), /line 3: messages\[0\]\.content must be a string, got nothing/],
      [line({ messages: [{ role: 'assistant', content: '', tool_calls: [] }] }), /line 3: messages\[0\] has the unsupported key "tool_calls"/],
      [line({ messages: [{ role: 'user', content: 'a', weight: 1 }] }), /line 3: messages\[0\]\.weight is only allowed on assistant messages/],
      [line({ messages: [{ role: 'assistant', content: 'a', weight: 0.5 }] }), /line 3: messages\[0\]\.weight must be 0 or 1, got 0\.5/],
    ];
    for (const [bad, re] of cases) {
      const text = [ok, '', bad, ok].join('\n');
      assert.throws(() => parseChatJsonl(text, 'd.jsonl'), (e: unknown) => e instanceof ChatDataError && e instanceof RangeError && e.line === 3 && re.test(e.message), bad);
    }
    assert.throws(() => parseChatJsonl(3 as unknown as string), /parseChatJsonl: text must be a string/);
  });

  it('chatTrainingStream concatenates each conversation rendered and tokenized on its own', () => {
    const { chatml, llama3 } = chatTokenizers();
    const convs = parseChatJsonl([
      line({ messages: [{ role: 'user', content: 'What is the capital of France?' }, { role: 'assistant', content: 'Paris.' }] }),
      line({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Bye.' }] }),
    ].join('\n'));
    for (const [tok, fmt, end] of [[chatml, 'chatml', '<|im_end|>'], [llama3, 'llama3', '<|eot_id|>']] as const) {
      const { tokens, lossMask } = chatTrainingStream(tok, convs, fmt);
      assert.equal(tok.decode(tokens), convs.map((c) => renderChat(c.messages, fmt)).join(''));
      const parts = convs.map((c) => tokenizeChat(tok, c.messages, fmt));
      assert.deepEqual([...tokens], parts.flatMap((p) => [...p.ids]));
      assert.deepEqual([...lossMask], parts.flatMap((p) => [...p.lossMask]));
      assert.equal(tok.decode(tokens.filter((_, i) => lossMask[i])), ['Paris.', 'Hello!', 'Bye.'].map((s) => s + end).join(''));
    }
    assert.deepEqual(chatTrainingStream(chatml, [], 'chatml'), { tokens: new Int32Array(0), lossMask: new Uint8Array(0) });
    assert.throws(() => chatTrainingStream(chatml, [{}] as never, 'chatml'), /chatTrainingStream: conversations\[0\] must be an object with a messages array/);
  });
});
