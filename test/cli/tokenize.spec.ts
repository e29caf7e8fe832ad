import assert from 'node:assert/strict';
import { family, writeFamilyGguf } from '../support/families.js';
import { openLlamaCpp, type LlamaCppModel } from '../support/llama-cpp.js';
import { fedtune, fedtuneJson } from './run-fedtune.js';

/** Strings that trip tokenizers: empty, whitespace runs, digits, contractions, non-ASCII, special-token text, partial specials. */
const AWKWARD = [
  '',
  '   ',
  'Hello world',
  ' tabs\tand\nnewlines\n\n  end ',
  "don't we'll I'M 1234567 3.14159",
  'emoji 🦙🎉, CJK 日本語, accents àÉîõü ß',
  '<|im_start|>user\nhi<|im_end|>\n<|eot_id|><|begin_of_text|>x<|endoftext|>',
  '<|im_start <|eot_id| |>x<|',
];

describe('cli/tokenize (fedtune tokenize)', function () {
  this.timeout(120_000);
  for (const name of ['qwen2', 'llama3'] as const) {
    describe(`${name} GGUF`, () => {
      let path: string;
      let llama: LlamaCppModel;
      before(async () => {
        path = writeFamilyGguf(family(name), 'F32');
        llama = await openLlamaCpp(path);
      });
      after(async () => llama?.dispose());

      it('gives llama.cpp\'s ids on awkward strings, specials parsed by default or as text, BOS only with --bos', () => {
        for (const text of AWKWARD) {
          for (const special of [true, false]) {
            for (const bos of [false, true]) {
              const args = ['tokenize', '--base', path, '--text', text, '--json', ...(special ? [] : ['--special-as-text']), ...(bos ? ['--bos'] : [])];
              const { ids } = fedtuneJson<{ ids: number[] }>(...args);
              assert.deepEqual(ids, llama.tokenize(text, { special, bos }), `${JSON.stringify(text)} special ${special} bos ${bos}`);
            }
          }
        }
      });
    });
  }

  it('prints space-separated ids without --json, and refuses a missing --text in one line', () => {
    const path = writeFamilyGguf(family('qwen2'), 'F32');
    const json = fedtuneJson<{ ids: number[] }>('tokenize', '--base', path, '--text', 'Hello world', '--json');
    const plain = fedtune('tokenize', '--base', path, '--text', 'Hello world');
    assert.equal(plain.stdout, `${json.ids.join(' ')}\n`);
    const r = fedtune('tokenize', '--base', path);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^fedtune tokenize: --text is required/);
  });
});
