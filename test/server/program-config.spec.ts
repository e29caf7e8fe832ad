/** Program config: training.dataFormat and which bases a program may name. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBase, writeHfModel, type LlamaConfig } from '../../model/index.js';
import { programSpec } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { TOKEN } from './fixtures.js';

const QWEN2: LlamaConfig = { dim: 32, hiddenDim: 48, nLayers: 1, nHeads: 2, nKvHeads: 1, vocabSize: 40, seqLen: 32, normEps: 1e-5, arch: 'qwen2', sharedClassifier: true, ropeTheta: 1e6, ropeStyle: 'neox', attnBias: true };
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

  it('a GGUF base needs no tokenizer; a missing tokenizer file is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-pc-'));
    assert.equal(programSpec({ id: 'g', base: MODEL.gguf, enrolmentToken: TOKEN, minContributors: 1 }).tokenizerPath, '');
    assert.throws(() => cfg({ tokenizer: join(dir, 'missing.bin') }), /program "p": tokenizer file .*missing\.bin does not exist/);
  });

  it('a Hugging Face directory with its tokenizer.json is a base; without one, unreadable, or with a tokenizer file it is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-pc-hf-'));
    const spec = (id: string, base: string, over: Record<string, unknown> = {}) => programSpec({ id, base, enrolmentToken: TOKEN, minContributors: 1, ...over });
    const rangeError = (re: RegExp) => (e: unknown) => e instanceof RangeError && re.test(e.message);
    const model = randomBase(QWEN2, 1);
    const good = join(dir, 'good');
    writeHfModel(good, model, { dtype: 'F16', tokenizerJson: { model: { type: 'BPE' } } });
    const s = spec('hf', good);
    assert.equal(s.basePath, good);
    assert.equal(s.tokenizerPath, '');
    assert.throws(() => spec('t', good, { tokenizer: MODEL.tok }), rangeError(/program "t": tokenizer must not be set with a Hugging Face directory base .*tokenizer\.json is the tokenizer/));
    const noTok = join(dir, 'no-tokenizer');
    writeHfModel(noTok, model, { dtype: 'F16' });
    assert.throws(() => spec('n', noTok), rangeError(/program "n": base .*no-tokenizer is a Hugging Face directory without tokenizer\.json/));
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    assert.throws(() => spec('e', empty), rangeError(/program "e": base .*empty is not a usable Hugging Face checkpoint: .*has no config\.json/));
  });
});
