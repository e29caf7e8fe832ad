import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseGguf, writeHfModel } from '../../model/index.js';
import type { BaseReport } from '../../cli/base-report.js';
import { MODEL } from '../helpers.js';
import { family, writeFamilyGguf, type FamilyFixture } from '../support/families.js';
import { fedtune, fedtuneJson, fedtuneWith, NO_TFJS } from './run-fedtune.js';

/** Block sizes from the GGML spec (ggml.c type_traits): [values per block, bytes per block]. */
const GGML_BLOCKS: Record<number, [string, number, number]> = { 0: ['F32', 1, 4], 1: ['F16', 1, 2], 8: ['Q8_0', 32, 34], 12: ['Q4_K', 256, 144], 14: ['Q6_K', 256, 210] };

/** Tensor counts and bytes by type, straight from a GGUF's tensor directory. */
function ggufTypeStats(bytes: Uint8Array): { stats: Record<string, { tensors: number; bytes: number }>; params: number } {
  const file = parseGguf(bytes);
  const stats: Record<string, { tensors: number; bytes: number }> = {};
  let params = 0;
  for (const t of file.tensors) {
    const [name, per, size] = GGML_BLOCKS[t.type]!;
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (!t.name.startsWith('rope_freqs')) params += n;
    const s = (stats[name] ??= { tensors: 0, bytes: 0 });
    s.tensors++;
    s.bytes += (n / per) * size;
  }
  return { stats, params };
}

describe('cli/inspect (fedtune inspect)', function () {
  this.timeout(60_000);
  let qwen: FamilyFixture;
  let qwenPath: string;

  before(() => {
    qwen = family('qwen2');
    qwenPath = writeFamilyGguf(qwen, 'Q4_K_M');
  });

  it('describes a qwen2 Q4_K_M GGUF from its headers: architecture, tensor types, tokenizer, chat format, identity', () => {
    const r = fedtuneJson<BaseReport>('inspect', '--base', qwenPath, '--json');
    const bytes = readFileSync(qwenPath);
    const c = qwen.loaded.weights.config;
    const { stats, params } = ggufTypeStats(bytes);
    assert.equal(r.format, 'gguf');
    assert.equal(r.architecture, 'qwen2');
    assert.equal(r.headDim, c.dim / c.nHeads);
    assert.equal(r.nLayers, c.nLayers);
    assert.equal(r.nKvHeads, c.nKvHeads);
    assert.equal(r.contextLength, c.seqLen);
    assert.deepEqual(r.rope, { style: 'neox', theta: 1e6, freqFactors: false });
    assert.equal(r.attnBias, true);
    assert.equal(r.qkNorm, false);
    assert.equal(r.tiedHead, true);
    assert.deepEqual(r.tensorTypes, stats);
    assert.deepEqual(Object.keys(stats).sort(), ['F32', 'Q4_K', 'Q6_K']); // the Q4_K_M mix, so the check is not vacuous
    assert.equal(r.parameters, params);
    assert.equal(r.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(r.sizeBytes, bytes.length);
    assert.equal(r.tokenizer.kind, 'bpe');
    assert.equal(r.tokenizer.vocabSize, qwen.tokens.length);
    assert.deepEqual(r.tokenizer.specialTokens, qwen.specials.map((text) => ({ id: qwen.tokens.indexOf(text), text })));
    assert.equal(r.tokenizer.bosId, qwen.bosId);
    assert.equal(r.tokenizer.eosId, qwen.eosId);
    assert.equal(r.tokenizer.addBos, false);
    assert.deepEqual(r.chat, { format: 'chatml', source: 'vocabulary' });
  });

  it('describes stories260K (llama2.c checkpoint + tok512.bin) as its 28-byte header says', () => {
    const r = fedtuneJson<BaseReport>('inspect', '--base', MODEL.bin, '--tokenizer', MODEL.tok, '--json');
    const h = new Int32Array(readFileSync(MODEL.bin).buffer.slice(0, 28));
    const [dim, hidden, layers, heads, kvHeads, vocab, seqLen] = h;
    const size = statSync(MODEL.bin).size;
    assert.equal(r.format, 'llama2c');
    assert.equal(r.architecture, 'llama');
    assert.deepEqual([r.dim, r.hiddenDim, r.nLayers, r.nHeads, r.nKvHeads, r.contextLength], [dim, hidden, layers, heads, kvHeads, seqLen]);
    assert.equal(r.headDim, dim! / heads!);
    assert.equal(r.tiedHead, vocab! > 0);
    // llama2.c's legacy export: embedding, 9 arrays per layer, final norm, freq_cis real and imag, (classifier)
    assert.deepEqual(r.tensorTypes, { F32: { tensors: 1 + 9 * layers! + 1 + 2 + (vocab! > 0 ? 0 : 1), bytes: size - 28 } });
    assert.equal(r.tokenizer.kind, 'sentencepiece');
    assert.equal(r.tokenizer.vocabSize, Math.abs(vocab!));
    assert.deepEqual(r.tokenizer.specialTokens.map((s) => s.id), [0, 1, 2]);
    assert.deepEqual([r.tokenizer.bosId, r.tokenizer.eosId, r.tokenizer.startId, r.tokenizer.addBos], [1, 2, 1, true]);
    assert.equal(r.chat, null);
    assert.deepEqual(r.rope, { style: 'interleaved', theta: 10000, freqFactors: false });
  });

  it('describes a Hugging Face directory (safetensors dtypes) and a llama3 GGUF with rope frequency factors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-inspect-hf-'));
    writeHfModel(dir, qwen.loaded, { dtype: 'BF16', tokenizerJson: qwen.tokenizerJson, tokenizerConfig: { eos_token: '<|im_end|>', bos_token: null } });
    const r = fedtuneJson<BaseReport>('inspect', '--base', dir, '--json');
    const c = qwen.loaded.weights.config;
    const matrices = 7 * c.nLayers + 1; // tied head: no lm_head
    const vectors = 5 * c.nLayers + 1; // two norms and three biases per layer, the final norm
    assert.equal(r.format, 'hf');
    assert.equal(r.architecture, 'qwen2');
    assert.equal(r.tokenizer.eosId, qwen.tokens.indexOf('<|im_end|>'));
    assert.equal(r.tensorTypes.BF16!.tensors, matrices + vectors);
    const llama = family('llama3');
    const l = fedtuneJson<BaseReport>('inspect', '--base', writeFamilyGguf(llama, 'F32'), '--json');
    assert.deepEqual([l.architecture, l.rope.style, l.rope.freqFactors, l.tiedHead, l.tokenizer.addBos], ['llama', 'interleaved', true, false, true]);
    assert.deepEqual(l.chat, { format: 'llama3', source: 'vocabulary' });
  });

  it('never loads TensorFlow.js (a hook that fails any @tensorflow import lets inspect and tokenize run, and stops generate)', () => {
    const r = fedtuneWith(NO_TFJS, 'inspect', '--base', qwenPath);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^architecture\s+qwen2, \d+ parameters$/m);
    assert.equal(fedtuneWith(NO_TFJS, 'tokenize', '--base', qwenPath, '--text', 'hi').code, 0);
    const g = fedtuneWith(NO_TFJS, 'generate', '--base', qwenPath, '--prompt', 'hi', '--max-tokens', '1');
    assert.notEqual(g.code, 0);
    assert.match(g.stderr, /TFJS_LOADED/);
    assert.equal(fedtune('inspect', '--base', qwenPath).stdout, r.stdout);
  });
});
