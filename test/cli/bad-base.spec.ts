import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bpeTokenizerEntries, encodeGguf, ggufModelInput, writeHfModel } from '../../model/index.js';
import { MODEL } from '../helpers.js';
import { family, familyGguf, type FamilyFixture } from '../support/families.js';
import { failsWith, fedtune } from './run-fedtune.js';

const OZ = join(MODEL.dir, '..', '..', 'data', 'wizard-of-oz.txt');

describe('cli: bad bases exit non-zero with one line naming the file', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-bad-base-'));
  let f: FamilyFixture;
  /** A fresh HF directory of the qwen2 fixture. */
  const hfDir = (name: string): string => {
    const d = join(dir, name);
    writeHfModel(d, f.loaded, { dtype: 'F16', tokenizerJson: f.tokenizerJson, tokenizerConfig: { eos_token: '<|im_end|>', bos_token: null } });
    return d;
  };
  /** Every command that opens a base fails with the same one line. */
  const allFail = (base: string, pattern: RegExp, commands = ['inspect', 'tokenize', 'generate']): void => {
    for (const cmd of commands) {
      const args = cmd === 'tokenize' ? ['--text', 'hi'] : cmd === 'generate' ? ['--prompt', 'hi', '--max-tokens', '1'] : cmd === 'eval' ? ['--text', OZ, '--max-tokens', '50'] : [];
      failsWith(fedtune(cmd, '--base', base, ...args), pattern);
    }
  };
  const quote = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  before(() => {
    f = family('qwen2');
  });

  it('a truncated GGUF', () => {
    const bytes = familyGguf(f, 'Q8_0');
    const path = join(dir, 'truncated.gguf');
    writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length * 0.7)));
    allFail(path, new RegExp(`${quote(path)} .*truncated`));
  });

  it('an unsupported architecture ("gemma") in the GGUF metadata', () => {
    const input = ggufModelInput(f.loaded, { tokenizer: bpeTokenizerEntries({ tokens: f.tokens, merges: f.merges, tokenTypes: f.tokenTypes, pre: f.pre, bosId: f.bosId, eosId: f.eosId, addBos: f.addBos }) });
    const metadata = input.metadata.map((m) => (m.key === 'general.architecture' ? { ...m, value: 'gemma' } : m.key.startsWith('qwen2.') ? { ...m, key: `gemma.${m.key.slice(6)}` } : m));
    const path = join(dir, 'gemma.gguf');
    writeFileSync(path, encodeGguf({ ...input, metadata }));
    allFail(path, new RegExp(`${quote(path)} holds architecture "gemma"; supported: llama, qwen2, qwen3`));
  });

  it('a HF directory with a corrupt safetensors file', () => {
    const d = hfDir('corrupt');
    const st = join(d, 'model.safetensors');
    const bytes = readFileSync(st);
    bytes.fill(0x7b, 8, 40); // '{' over the start of the JSON header
    writeFileSync(st, bytes);
    allFail(d, new RegExp(`${quote(st)} is not a readable safetensors file: its header is not JSON`));
  });

  it('a HF directory without tokenizer.json', () => {
    const d = hfDir('no-tokenizer');
    rmSync(join(d, 'tokenizer.json'));
    allFail(d, new RegExp(`cannot read tokenizer.json in the tokenizer directory ${quote(d)}: ENOENT`));
  });

  it('a HF directory whose tensor shapes contradict config.json', () => {
    const d = hfDir('shape');
    const cfgPath = join(d, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { intermediate_size: number };
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_size: cfg.intermediate_size * 2 }));
    failsWith(fedtune('inspect', '--base', d), new RegExp(`${quote(join(d, 'model.safetensors'))}: tensor .*mlp.* has shape \\[\\d+, \\d+\\] but config.json implies`));
    failsWith(fedtune('generate', '--base', d, '--prompt', 'hi'), new RegExp(`${quote(join(d, 'model.safetensors'))}: tensor .*mlp.* has shape`));
  });
});
