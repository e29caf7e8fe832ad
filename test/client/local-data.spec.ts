/**
 * A device's local data by data format, on the tiny qwen2 GGUF's own byte-level BPE tokenizer:
 * chat JSONL is rendered as ChatML (checked against the rendering written out by hand) and only
 * the assistant replies and their <|im_end|> are scored (checked against the JSONL's replies).
 */
import assert from 'node:assert/strict';
import { localTrainingData, LocalDataError, withReplay } from '../../client/index.js';
import { ggufTextTokenizer, parseGguf, type MaskedTokens } from '../../model/index.js';
import { family, familyGguf } from '../support/families.js';

const tokenizer = ggufTextTokenizer(parseGguf(familyGguf(family('qwen2')), 'qwen2.gguf'));
const chatml = { tokenizer, chatStyle: { format: 'chatml' as const } };

const C1 = { messages: [{ role: 'user', content: 'Who art thou?' }, { role: 'assistant', content: 'A humble servant, my lord.' }] };
const C2 = {
  messages: [
    { role: 'system', content: 'Speak as the Bard.' },
    { role: 'user', content: 'Greet me.' },
    { role: 'assistant', content: 'Good morrow!', weight: 0 },
    { role: 'user', content: 'Again.' },
    { role: 'assistant', content: 'Well met, friend.' },
  ],
};
const jsonl = (...cs: object[]) => cs.map((c) => JSON.stringify(c)).join('\n') + '\n';

/** The decoded runs of consecutive scored tokens. */
function scoredRuns(d: MaskedTokens): string[] {
  const runs: string[] = [];
  let run: number[] = [];
  d.tokens.forEach((t, i) => {
    if (d.lossMask[i]) run.push(t);
    else if (run.length) (runs.push(tokenizer.decode(run)), (run = []));
  });
  if (run.length) runs.push(tokenizer.decode(run));
  return runs;
}

describe('client: localTrainingData', () => {
  it('text: the parts joined by newlines, no BOS, every token trained on', () => {
    const d = localTrainingData(['To be, or not', 'to be'], 'text', { tokenizer, chatStyle: undefined });
    assert.ok(d instanceof Int32Array);
    assert.equal(tokenizer.decode(d), 'To be, or not\nto be');
  });

  it('chat: ChatML as written by hand; scored tokens are exactly the weighted replies and their <|im_end|>', () => {
    const d = localTrainingData([jsonl(C1), jsonl(C2)], 'chat', chatml) as MaskedTokens;
    assert.equal(
      tokenizer.decode(d.tokens),
      '<|im_start|>user\nWho art thou?<|im_end|>\n<|im_start|>assistant\nA humble servant, my lord.<|im_end|>\n' +
        '<|im_start|>system\nSpeak as the Bard.<|im_end|>\n<|im_start|>user\nGreet me.<|im_end|>\n<|im_start|>assistant\nGood morrow!<|im_end|>\n' +
        '<|im_start|>user\nAgain.<|im_end|>\n<|im_start|>assistant\nWell met, friend.<|im_end|>\n',
    );
    assert.deepEqual(scoredRuns(d), ['A humble servant, my lord.<|im_end|>', 'Well met, friend.<|im_end|>']);
  });

  it('chat: the base\'s default system message is rendered (unscored) before a conversation without one', () => {
    const d = localTrainingData([jsonl(C1)], 'chat', { tokenizer, chatStyle: { format: 'chatml', defaultSystem: 'Be brief.' } }) as MaskedTokens;
    assert.ok(tokenizer.decode(d.tokens).startsWith('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n'));
    assert.deepEqual(scoredRuns(d), ['A humble servant, my lord.<|im_end|>']);
  });

  it('chat refuses, with a sentence: a base without a chat format, a bad line, nothing to score', () => {
    assert.throws(() => localTrainingData([jsonl(C1)], 'chat', { tokenizer, chatStyle: undefined }), (e: unknown) => e instanceof LocalDataError && /training\.dataFormat "chat".*base has no chat format/.test(e.message));
    assert.throws(() => localTrainingData([jsonl(C1), `${jsonl(C1)}Once upon a time\n`], 'chat', chatml), (e: unknown) => e instanceof LocalDataError && /local chat data part 2 line 2: not valid JSON/.test(e.message));
    assert.throws(() => localTrainingData(['\n\n'], 'chat', chatml), (e: unknown) => e instanceof LocalDataError && /holds no conversation/.test(e.message));
    const unweighted = { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello', weight: 0 }] };
    assert.throws(() => localTrainingData([jsonl(unweighted)], 'chat', chatml), (e: unknown) => e instanceof LocalDataError && /no assistant reply to train on/.test(e.message));
    // a Llama 3 style asked of a ChatML vocabulary
    assert.throws(() => localTrainingData([jsonl(C1)], 'chat', { tokenizer, chatStyle: { format: 'llama3' } }), (e: unknown) => e instanceof LocalDataError && /llama3 format/.test(e.message));
  });

  it('withReplay keeps the chat mask and scores the appended replay tokens in full; plain tokens pass through', () => {
    const d = localTrainingData([jsonl(C1)], 'chat', chatml) as MaskedTokens;
    const mixed = Int32Array.from([...d.tokens, 5, 6, 7]);
    const r = withReplay(d, mixed) as MaskedTokens;
    assert.deepEqual([...r.tokens], [...mixed]);
    assert.deepEqual([...r.lossMask], [...d.lossMask, 1, 1, 1]);
    const plain = Int32Array.from([1, 2]);
    assert.equal(withReplay(plain, mixed), mixed);
  });
});
