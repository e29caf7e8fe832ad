import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { bpeTokenizerEntries, encodeGguf, ggufModelInput } from '../../model/index.js';
import { family, writeFamilyGguf, type FamilyFixture } from '../support/families.js';
import { openLlamaCpp, type LlamaCppModel } from '../support/llama-cpp.js';
import { QWEN25_TEMPLATE } from '../model/chat-fixtures.js';
import { fedtune, fedtuneJson } from './run-fedtune.js';

interface GenerateJson {
  prompt_ids: number[];
  ids: number[];
  text: string;
  steps?: { top: { id: number; p: number }[] }[];
}

/** A fixture's F32 GGUF with a Jinja chat template in its metadata. */
function withTemplate(f: FamilyFixture, template: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'fedtune-gen-')), `${f.name}-chat.gguf`);
  writeFileSync(path, encodeGguf(ggufModelInput(f.loaded, {
    tokenizer: bpeTokenizerEntries({ tokens: f.tokens, merges: f.merges, tokenTypes: f.tokenTypes, pre: f.pre, bosId: f.bosId, eosId: f.eosId, addBos: f.addBos, chatTemplate: template }),
  })));
  return path;
}

describe('cli/generate --json (fedtune generate)', function () {
  this.timeout(120_000);
  const N = 24;

  describe('llama3 GGUF (adds BOS)', () => {
    let path: string;
    let llama: LlamaCppModel;
    let stops: number[];
    before(async () => {
      const f = family('llama3');
      stops = ['<|eot_id|>', '<|end_of_text|>'].map((t) => f.tokens.indexOf(t));
      path = writeFamilyGguf(f, 'F32');
      llama = await openLlamaCpp(path);
    });
    after(async () => llama?.dispose());

    it('greedy: prompt_ids as llama.cpp tokenizes the prompt, ids = llama.cpp\'s greedy continuation, top-3 probabilities within 1e-3', async () => {
      const prompt = 'To be, or not to be';
      const r = fedtune('generate', '--base', path, '--prompt', prompt, '--max-tokens', String(N), '--temperature', '0', '--json', '--top-probs', '3');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim().split('\n').length, 1); // JSON alone on stdout, logs on stderr
      assert.match(r.stderr, /backend: wasm/);
      const j = JSON.parse(r.stdout) as GenerateJson;
      assert.deepEqual(j.prompt_ids, llama.tokenize(prompt, { special: true, bos: llama.addBos }));
      assert.equal(j.prompt_ids[0], llama.bosId);
      const theirs = await llama.greedy(j.prompt_ids, N);
      assert.ok(j.ids.length > 0);
      assert.deepEqual(j.ids, theirs.slice(0, j.ids.length));
      // stopped early only at a stop token (EOS / end of turn)
      if (j.ids.length < N) assert.ok(stops.includes(theirs[j.ids.length]!), `stopped at ${theirs[j.ids.length]}`);
      assert.equal(j.text, llama.detokenize(j.ids));
      assert.equal(j.steps!.length, j.ids.length);
      const p = await llama.nextTokenProbs(j.prompt_ids);
      const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]!).slice(0, 3);
      assert.deepEqual(j.steps![0]!.top.map((t) => t.id), order);
      for (const t of j.steps![0]!.top) assert.ok(Math.abs(t.p - p[t.id]!) < 1e-3, `${t.id}: ${t.p} vs ${p[t.id]}`);
      // every step's first choice is the greedy token
      j.steps!.forEach((s, i) => assert.equal(s.top[0]!.id, j.ids[i]));
    });

    it('an empty prompt is fed as BOS alone; --max-tokens 0 generates nothing', () => {
      const j = fedtuneJson<GenerateJson>('generate', '--base', path, '--prompt', '', '--max-tokens', '0', '--json');
      assert.deepEqual(j, { prompt_ids: [llama.bosId], ids: [], text: '' });
    });
  });

  describe('qwen2 GGUF with the Qwen2.5 chat template', () => {
    let path: string;
    let llama: LlamaCppModel;
    before(async () => {
      path = withTemplate(family('qwen2'), QWEN25_TEMPLATE);
      llama = await openLlamaCpp(path);
    });
    after(async () => llama?.dispose());

    it('--chat feeds the template\'s rendering (as @huggingface/jinja renders it) and continues as llama.cpp does until <|im_end|>', async () => {
      // a prompt whose reply llama.cpp ends (with <|im_end|>) within N tokens, found by asking llama.cpp
      const endIds = [llama.eosId, llama.tokenize('<|endoftext|>', { special: true, bos: false })[0]];
      const words = ['queen', 'thou', 'lord', 'night', 'love', 'death', 'king', 'sweet', 'fair', 'good', 'what', 'why', '149', '7', 'sir', 'come'];
      let prompt = '';
      for (let i = 0; i < 400 && !prompt; i++) {
        const candidate = `${words[i % words.length]} ${words[(i * 7 + 3) % words.length]} ${words[(i * 5 + 1) % words.length]}`;
        const rendered = new Template(QWEN25_TEMPLATE).render({ messages: [{ role: 'user', content: candidate }], add_generation_prompt: true });
        const g = await llama.greedy(llama.tokenize(rendered, { special: true, bos: false }), N);
        if (g.slice(1).some((t) => endIds.includes(t))) prompt = candidate;
      }
      assert.ok(prompt, 'some prompt makes llama.cpp end its turn within N tokens');
      const r = fedtune('generate', '--base', path, '--prompt', prompt, '--chat', '--max-tokens', String(N), '--json');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /chat: chatml \(default system message "You are Qwen/);
      const j = JSON.parse(r.stdout) as GenerateJson;
      const rendered = new Template(QWEN25_TEMPLATE).render({ messages: [{ role: 'user', content: prompt }], add_generation_prompt: true });
      assert.deepEqual(j.prompt_ids, llama.tokenize(rendered, { special: true, bos: false }));
      const theirs = await llama.greedy(j.prompt_ids, N);
      assert.deepEqual(j.ids, theirs.slice(0, j.ids.length));
      assert.ok(j.ids.length < N, 'the reply should end before --max-tokens');
      assert.ok([llama.eosId, llama.tokenize('<|endoftext|>', { special: true, bos: false })[0]].includes(theirs[j.ids.length]), `llama.cpp continues with ${theirs[j.ids.length]}`);
    });

    it('without --chat the prompt is plain text, with no BOS (the base does not add one)', () => {
      const j = fedtuneJson<GenerateJson>('generate', '--base', path, '--prompt', 'Hello there', '--max-tokens', '2', '--json');
      assert.deepEqual(j.prompt_ids, llama.tokenize('Hello there', { special: true, bos: false }));
    });
  });
});
