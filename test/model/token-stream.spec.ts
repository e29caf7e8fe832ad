import assert from 'node:assert/strict';
import { batchAt, BpeTokenizer, FrozenBase, generate, initBackend, randomBase, sampleSequences, type LlamaConfig } from '../../model/index.js';
import { addedId, fixtureJson } from './tokenizer-fixtures.js';

/** Generation and sampling with a byte-level BPE vocabulary (no BOS, Qwen-style) on a tiny random base. */
describe('model/token-stream with generate and sampleSequences (byte-level BPE, no BOS)', function () {
  this.timeout(60_000);
  const json = fixtureJson('qwen2', ['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
  const eot = addedId(json, '<|endoftext|>');
  const tok = BpeTokenizer.fromTokenizerJson(json, { eosId: addedId(json, '<|im_end|>') });
  let base: FrozenBase;
  before(async () => {
    await initBackend();
    const config: LlamaConfig = { dim: 16, hiddenDim: 32, nLayers: 1, nHeads: 2, nKvHeads: 2, vocabSize: tok.vocabSize, seqLen: 64, sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000 };
    base = new FrozenBase(randomBase(config, 3), 'none');
  });
  after(() => base.dispose());

  it('encodes the prompt without BOS, and the streamed text is the decoded bytes of the new tokens', () => {
    const pieces: string[] = [];
    const g = generate(base, tok, 'Ünïcödé 😀 hi', { maxTokens: 40, temperature: 1, seed: 7, onText: (t) => pieces.push(t) });
    assert.deepEqual([...g.promptIds], [...tok.encode('Ünïcödé 😀 hi', { bos: false })]);
    assert.equal(tok.addBos, false);
    assert.equal(pieces.join(''), g.text);
    assert.equal(g.text, new TextDecoder().decode(tok.decodeBytes(g.ids)));
    assert.ok(g.ids.every((t) => !tok.isStop(t)));
  });

  it('starts an empty prompt from the start token (<|endoftext|>) and stops at any stop token', () => {
    assert.equal(tok.startId, eot);
    const free = generate(base, tok, '', { maxTokens: 5, temperature: 1, seed: 2 });
    assert.equal(free.promptIds.length, 0);
    // a greedy run, then the same run with its first token declared a stop token: it ends at once
    const greedy = generate(base, tok, 'hi there', { maxTokens: 5 });
    assert.ok(greedy.ids.length > 0);
    const stopping = BpeTokenizer.fromTokenizerJson(json, { eosId: addedId(json, '<|im_end|>'), stopIds: [greedy.ids[0]!] });
    assert.deepEqual(generate(base, stopping, 'hi there', { maxTokens: 5 }).ids, []);
  });

  it('samples sequences from the start token, excluding stop tokens, and windows lead with it', () => {
    const s = sampleSequences(base, { tokenizer: tok, count: 4, length: 20, seed: 1 });
    assert.ok(s.length > 0 && [...s].every((t) => !tok.isStop(t)));
    const other = sampleSequences(base, { tokenizer: { startId: addedId(json, '<|im_start|>'), isStop: (id) => tok.isStop(id) }, count: 4, length: 20, seed: 1 });
    assert.notDeepEqual([...other], [...s], 'the start token conditions the samples');
    const b = batchAt(Int32Array.of(5, 6, 7, 8, 9), [0, 1], 4, tok.startId);
    assert.deepEqual([...b.inputs], [eot, 5, 6, 7, eot, 6, 7, 8]);
    assert.deepEqual([...b.targets], [5, 6, 7, 8, 6, 7, 8, 9]);
  });
});
