import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHfModel } from '../../model/index.js';
import { MODEL } from '../helpers.js';
import { family, familyGguf } from '../support/families.js';
import { failsWith, fedtune, fedtuneJson } from './run-fedtune.js';

const OZ = join(MODEL.dir, '..', '..', 'data', 'wizard-of-oz.txt');

describe('cli/base-files (--base: a GGUF file, a llama2.c checkpoint or a Hugging Face directory)', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-base-files-'));
  const f = family('qwen2');
  const hf = join(dir, 'qwen2-hf');
  writeHfModel(hf, f.loaded, { dtype: 'F32', tokenizerJson: f.tokenizerJson, tokenizerConfig: { eos_token: '<|im_end|>', bos_token: null } });
  const gguf = join(dir, 'qwen2.gguf');
  writeFileSync(gguf, familyGguf(f, 'F32'));

  it('a HF directory and the GGUF of the same model give the same tokens and the same loss', () => {
    const text = 'Now is the winter of our discontent <|im_end|>';
    const ids = (base: string): number[] => fedtuneJson<{ ids: number[] }>('tokenize', '--base', base, '--text', text, '--json').ids;
    assert.deepEqual(ids(hf), ids(gguf));
    const loss = (base: string): { loss: number; tokens: number } => fedtuneJson('eval', '--base', base, '--text', OZ, '--max-tokens', '60', '--json');
    const a = loss(hf);
    const b = loss(gguf);
    assert.equal(a.tokens, 60);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-4, `${a.loss} vs ${b.loss}`);
  });

  it('refuses, in one line each: a missing --base, --tokenizer with a directory, a coordinator program naming a tokenizer beside a directory', () => {
    failsWith(fedtune('inspect', '--base', join(dir, 'nowhere')), /--base file or directory .*nowhere does not exist/);
    failsWith(fedtune('tokenize', '--base', hf, '--tokenizer', MODEL.tok, '--text', 'x'), /--tokenizer does not apply to the Hugging Face directory/);
    failsWith(fedtune('inspect', '--base', MODEL.bin, '--tokenizer', join(dir, 'no-tok.bin')), /--tokenizer file .*no-tok\.bin does not exist/);
    const config = join(dir, 'programs.json');
    writeFileSync(config, JSON.stringify({ programs: [{ id: 'p', base: hf, tokenizer: MODEL.tok, enrolmentToken: 'secret-token', lora: { rank: 2 } }] }));
    failsWith(fedtune('coordinator', '--config', config, '--port', '0', '--data', join(dir, 'data')), /tokenizer must not be set with a Hugging Face directory base .*qwen2-hf/);
  });
});
