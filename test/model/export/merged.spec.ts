/**
 * Merged exports: the base with the adapter folded in. As GGUF (F32), llama.cpp loads it with no
 * adapter and agrees with fedtune's adapted model (probabilities within 1e-3, 24-token greedy
 * continuation identical) and tokenizes as the base does; F16 / Q8_0 files load in both. As a
 * Hugging Face directory, fedtune reads it back as a base whose logits are fedtune's adapted
 * logits (1e-5). Refusals: an adapter for another base, a merged GGUF from a non-GGUF base.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  AdapterFileError,
  closeGgufFile,
  createBase,
  forward,
  ggufTextTokenizer,
  initBackend,
  loadGgufBase,
  mergeAdapter,
  ModelFormatError,
  readGgufBase,
  openGgufFile,
  readHfBase,
  writeMergedGguf,
  writeMergedHf,
  type FrozenBase,
  type LoraAdapter,
  type TextTokenizer,
} from '../../../model/index.js';
import { adapterOf, greedy, maxAbsDiff, probsAfter, randomAdapterData } from '../../support/adapters.js';
import { family, writeFamilyGguf, type FamilyName } from '../../support/families.js';
import { openLlamaCpp } from '../../support/llama-cpp.js';

const PROMPT = 'To be, or not to be: that is the question';

function tokenizerOf(path: string): TextTokenizer {
  const file = openGgufFile(path);
  try {
    return ggufTextTokenizer(file);
  } finally {
    closeGgufFile(file);
  }
}

function logits(base: FrozenBase, ids: readonly number[], adapter?: LoraAdapter): Float32Array {
  return tf.tidy(() => forward(base, Int32Array.from(ids), 1, { adapter }).logits.dataSync() as Float32Array);
}

describe('export: merged models', function () {
  this.timeout(300_000);
  before(async () => {
    await initBackend();
  });

  for (const name of ['qwen2', 'smollm2'] as FamilyName[]) {
    describe(name, () => {
      let path: string;
      let base: FrozenBase;
      let adapter: LoraAdapter;
      let tok: TextTokenizer;
      const dir = mkdtempSync(join(tmpdir(), `fedtune-merged-${name}-`));
      const data = (): ReturnType<typeof randomAdapterData> => randomAdapterData(base.config, base.sha256, { rank: 4, alpha: 8, targets: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] }, name === 'smollm2' ? 43 : 41);
      before(() => {
        path = writeFamilyGguf(family(name), 'F32');
        base = loadGgufBase(path, 'none');
        tok = tokenizerOf(path);
        adapter = adapterOf(data());
      });
      after(() => {
        adapter?.dispose();
        base?.dispose();
      });

      it('merged F32 GGUF in llama.cpp without an adapter = fedtune with the adapter', async () => {
        const out = join(dir, 'merged-F32.gguf');
        writeMergedGguf(out, path, data(), { type: 'F32' });
        const lc = await openLlamaCpp(out);
        const lcBase = await openLlamaCpp(path);
        try {
          assert.deepEqual(lc.tokenize(PROMPT + ' <|im_end|>', { special: true, bos: true }), lcBase.tokenize(PROMPT + ' <|im_end|>', { special: true, bos: true }), 'the tokenizer came along');
          const ids = [...tok.encode(PROMPT)];
          const ours = probsAfter(base, ids, adapter);
          assert.ok(maxAbsDiff(ours, probsAfter(base, ids)) > 0.05, 'the adapter changes the output noticeably');
          const d = maxAbsDiff(ours, await lc.nextTokenProbs(ids));
          assert.ok(d < 1e-3, `max |Δp| ${d.toExponential(2)}`);
          const g = greedy(base, ids, 24, adapter);
          assert.ok(Math.min(...g.margins) >= 1e-3, `top-two margin ≥ 1e-3 (min ${Math.min(...g.margins).toExponential(2)})`);
          assert.deepEqual(await lc.greedy(ids, 24), g.ids);
          // and fedtune reads the merged file back as a base equal to base + adapter
          const merged = loadGgufBase(out, 'none');
          try {
            const a = logits(merged, ids);
            const b = logits(base, ids, adapter);
            assert.ok(maxAbsDiff(a, b) < 1e-4, `fedtune logits ${maxAbsDiff(a, b).toExponential(2)}`);
          } finally {
            merged.dispose();
          }
        } finally {
          await lc.dispose();
          await lcBase.dispose();
        }
      });

      it('merged F16 and Q8_0 GGUF files load in llama.cpp and in fedtune', async () => {
        const ids = [...tok.encode(PROMPT)];
        const ours = probsAfter(base, ids, adapter);
        for (const type of ['F16', 'Q8_0'] as const) {
          const out = join(dir, `merged-${type}.gguf`);
          writeMergedGguf(out, path, data(), { type });
          const lc = await openLlamaCpp(out);
          const back = loadGgufBase(out, 'native');
          try {
            // rounding moves the probabilities (for Q8_0 llama.cpp also rounds activations to 8 bits:
            // see llama-cpp-families.spec.ts), but far less than dropping the adapter would
            const theirs = await lc.nextTokenProbs(ids);
            const d = maxAbsDiff(ours, theirs);
            const dropped = maxAbsDiff(probsAfter(base, ids), theirs);
            assert.ok(d < (type === 'F16' ? 0.01 : 0.15) && d < dropped / 2, `${type}: llama.cpp max |Δp| ${d.toExponential(2)} (without the adapter ${dropped.toExponential(2)})`);
            const mine = probsAfter(back, ids);
            assert.ok(maxAbsDiff(mine, theirs) < (type === 'F16' ? 1e-3 : 0.15), `${type}: fedtune reads it back as llama.cpp does (max |Δp| ${maxAbsDiff(mine, theirs).toExponential(2)})`);
          } finally {
            back.dispose();
            await lc.dispose();
          }
        }
      });

      it('merged Hugging Face directory, read back as a base, reproduces the adapted logits', () => {
        const out = join(dir, 'merged-hf');
        writeMergedHf(out, path, data(), { dtype: 'F32' });
        assert.ok(existsSync(join(out, 'config.json')));
        const merged = createBase(readHfBase(out), 'none');
        // fedtune's own merge (model/merge.ts, through the LoraAdapter) of the same adapter
        const reference = createBase({ ...readGgufBase(path), weights: mergeAdapter(readGgufBase(path).weights, adapter) }, 'none');
        try {
          for (const text of [PROMPT, 'Now is the winter of our discontent']) {
            const ids = [...tok.encode(text)];
            const got = logits(merged, ids);
            const d = maxAbsDiff(got, logits(reference, ids));
            assert.ok(d < 1e-5, `${text}: max |Δlogit| vs mergeAdapter ${d.toExponential(2)}`);
            // against the unmerged LoRA path, float32 sums in another order (logits ~10: ~1e-6 relative)
            const e = maxAbsDiff(got, logits(base, ids, adapter));
            assert.ok(e < 2e-4, `${text}: max |Δlogit| vs base + adapter ${e.toExponential(2)}`);
          }
        } finally {
          merged.dispose();
          reference.dispose();
        }
      });

      it('refuses an adapter made for another base', () => {
        const other = randomAdapterData(base.config, 'ab'.repeat(32), { rank: 2 }, 1);
        assert.throws(() => writeMergedGguf(join(dir, 'x.gguf'), path, other), (e: Error) => e instanceof AdapterFileError && /trained for base sha256 abababab.*give the base it was made for/.test(e.message) && e.message.includes(path));
        assert.throws(() => writeMergedHf(join(dir, 'x-hf'), path, other), AdapterFileError);
      });
    });
  }

  it('a merged GGUF needs a GGUF base (its tokenizer); llama3 rope factors cannot go to HF from GGUF', () => {
    const f = family('llama3');
    const path = writeFamilyGguf(f, 'F32');
    const hfLike = mkdtempSync(join(tmpdir(), 'fedtune-not-gguf-'));
    const data = randomAdapterData(f.loaded.weights.config, 'cd'.repeat(32), { rank: 2 }, 2);
    assert.throws(() => writeMergedGguf(join(hfLike, 'o.gguf'), join(process.cwd(), '..', 'shared', 'models', 'stories260K', 'stories260K.bin'), data), (e: Error) => e instanceof ModelFormatError && /is not a GGUF file/.test(e.message));
    const base = loadGgufBase(path, 'none');
    try {
      const ok = randomAdapterData(base.config, base.sha256, { rank: 2 }, 3);
      assert.throws(() => writeMergedHf(join(hfLike, 'o'), path, ok), (e: Error) => e instanceof ModelFormatError && /llama3 rope factors/.test(e.message));
    } finally {
      base.dispose();
    }
  });
});
