/**
 * The oracle checks itself: llama.cpp (through test/support/llama-cpp.ts) running the GGUF
 * copy of stories260K must reproduce the llama2.c run.c golden outputs for the same weights
 * (../shared/models/stories260K/golden), and must reject bad files without hanging.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFormatError } from '../../model/checkpoint.js';
import { defaultModelDir } from '../../model/paths.js';
import { openLlamaCpp, type LlamaCppModel } from '../support/llama-cpp.js';

const GGUF = join(defaultModelDir(), 'stories260K.gguf');
const GOLDEN = join(defaultModelDir(), 'golden', 'once-upon-a-time.json');

interface Golden {
  prompt: string;
  prompt_ids: number[];
  logits: number[][];
  greedy_ids: number[];
}

/** Numerically stable softmax in float64 (independent of llama.cpp). */
function softmax(logits: readonly number[]): number[] {
  const m = Math.max(...logits);
  const e = logits.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('llama.cpp oracle: the oracle checks itself', function () {
  this.timeout(60_000);
  const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Golden;
  let model: LlamaCppModel;

  before(async () => {
    model = await openLlamaCpp(GGUF, { contextSize: 256 });
  });
  after(async () => {
    await model?.dispose();
  });

  it('reads the model settings from the GGUF (BOS 1, EOS 2, add BOS, 512 tokens)', () => {
    // SOURCE.md: tok512 ids 0 <unk>, 1 BOS, 2 EOS; the llama (SentencePiece) vocabulary adds BOS by default
    assert.equal(model.bosId, 1);
    assert.equal(model.eosId, 2);
    assert.equal(model.addBos, true);
    assert.equal(model.vocabSize, 512);
  });

  it('tokenizes the prompt like llama2.c run.c (with and without BOS)', () => {
    assert.deepEqual(model.tokenize(golden.prompt, { special: false, bos: true }), golden.prompt_ids);
    assert.deepEqual(model.tokenize(golden.prompt, { special: false, bos: false }), golden.prompt_ids.slice(1));
    // special=true parses "<s>" as the BOS token; special=false keeps it as text
    assert.equal(model.tokenize('<s>Once', { special: true, bos: false })[0], 1);
    assert.ok(!model.tokenize('<s>Once', { special: false, bos: false }).includes(1));
  });

  it('continues greedily with the golden ids, and the same again on a second call', async () => {
    const n = Math.max(24, golden.greedy_ids.length);
    assert.ok(golden.greedy_ids.length >= 24, 'golden holds at least 24 continuation ids');
    const ids = await model.greedy(golden.prompt_ids, n);
    assert.deepEqual(ids, golden.greedy_ids.slice(0, n));
    // a call in between must not leak KV-cache state into the next one
    const before = await model.nextTokenProbs(golden.prompt_ids);
    await model.greedy(model.tokenize('The dog ran to the big tree.', { special: false, bos: true }), 20);
    assert.deepEqual(await model.nextTokenProbs(golden.prompt_ids), before);
    assert.deepEqual(await model.greedy(golden.prompt_ids, 8), golden.greedy_ids.slice(0, 8));
    assert.equal(model.detokenize(ids.slice(0, 6)), ', there was a little g');
  });

  it('gives next-token probabilities within 1e-4 of softmax(golden logits) at every prompt position', async () => {
    for (let k = 1; k <= golden.prompt_ids.length; k++) {
      const p = await model.nextTokenProbs(golden.prompt_ids.slice(0, k));
      const want = softmax(golden.logits[k - 1]);
      assert.equal(p.length, want.length);
      let maxDiff = 0;
      let sum = 0;
      for (let i = 0; i < p.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(p[i] - want[i]));
        sum += p[i];
      }
      assert.ok(maxDiff <= 1e-4, `position ${k - 1}: max |p - softmax(golden)| = ${maxDiff}`);
      assert.ok(Math.abs(sum - 1) < 1e-4, `position ${k - 1}: probabilities sum to ${sum}`);
    }
  });

  it('reports generation speed for a greedy run', async () => {
    const s = await model.generationStats(golden.prompt_ids, 16);
    assert.equal(s.generatedTokens, 16);
    assert.equal(s.promptTokens, golden.prompt_ids.length);
    assert.ok(s.tokensPerSecond > 0 && Number.isFinite(s.tokensPerSecond));
  });

  it('also runs with llama.cpp defaults (precise: false: F16 KV cache, flash attention auto)', async () => {
    const fast = await openLlamaCpp(GGUF, { contextSize: 64, precise: false });
    try {
      assert.deepEqual(await fast.greedy(golden.prompt_ids, 24), golden.greedy_ids.slice(0, 24));
    } finally {
      await fast.dispose();
    }
  });

  it('rejects misuse with TypeError/RangeError', async () => {
    await assert.rejects(model.greedy([], 3), RangeError);
    await assert.rejects(model.greedy([1, 512], 3), RangeError);
    await assert.rejects(model.greedy([1], 1.5), TypeError);
    await assert.rejects(model.nextTokenProbs([1, 300, 1000]), RangeError);
    await assert.rejects(model.greedy([1], model.contextSize), RangeError);
    await assert.rejects(openLlamaCpp(GGUF, { threads: 0 }), RangeError);
  });

  describe('bad files', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'fedtune-oracle-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('rejects a missing file with ModelFormatError naming it', async () => {
      const p = join(dir, 'missing.gguf');
      await assert.rejects(openLlamaCpp(p), (e: Error) => e instanceof ModelFormatError && e.message.includes(p));
    });

    it('rejects truncated GGUF files (header only, mid-tensor, last bytes missing) with ModelFormatError', async () => {
      const bytes = readFileSync(GGUF);
      for (const keep of [100, Math.floor(bytes.length / 2), bytes.length - 64]) {
        const p = join(dir, `truncated-${keep}.gguf`);
        writeFileSync(p, bytes.subarray(0, keep));
        await assert.rejects(openLlamaCpp(p), (e: Error) => e instanceof ModelFormatError && e.message.includes(p), `kept ${keep} bytes`);
      }
      // the process is still fine: the real model still loads and runs afterwards
      const again = await openLlamaCpp(GGUF, { contextSize: 64 });
      try {
        assert.deepEqual(await again.greedy(golden.prompt_ids, 3), golden.greedy_ids.slice(0, 3));
      } finally {
        await again.dispose();
      }
    });
  });
});
