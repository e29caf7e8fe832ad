/** Program config: training.dataFormat and which bases a program may name. */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { programSpec } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

const cfg = (over: Record<string, unknown>) => programSpec({ id: 'p', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: TOKEN, ...over });

describe('server: program config training.dataFormat and bases', () => {
  it('dataFormat defaults to "text" and accepts "chat"', () => {
    assert.equal(cfg({}).training.dataFormat, 'text');
    assert.equal(cfg({ training: { dataFormat: 'text' } }).training.dataFormat, 'text');
    assert.equal(cfg({ training: { dataFormat: 'chat', steps: 3 } }).training.dataFormat, 'chat');
  });

  it('a bad dataFormat is a RangeError naming the program, the field and the value', () => {
    for (const bad of ['jsonl', 'CHAT', '', 1, null]) {
      assert.throws(() => cfg({ training: { dataFormat: bad } }), (e: unknown) => e instanceof RangeError && /program "p": training\.dataFormat must be one of "text", "chat", got /.test(e.message) && e.message.endsWith(JSON.stringify(bad)), String(bad));
    }
  });

  it('a GGUF base needs no tokenizer; a Hugging Face directory is refused with a sentence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-pc-'));
    assert.equal(programSpec({ id: 'g', base: MODEL.gguf, enrolmentToken: TOKEN, minContributors: 1 }).tokenizerPath, '');
    assert.throws(() => programSpec({ id: 'h', base: dir, enrolmentToken: TOKEN }), (e: unknown) => e instanceof RangeError && /program "h": base .* is a Hugging Face directory; .*convert it to GGUF/.test(e.message));
    assert.throws(() => cfg({ tokenizer: join(dir, 'missing.bin') }), /program "p": tokenizer file .*missing\.bin does not exist/);
  });
});
