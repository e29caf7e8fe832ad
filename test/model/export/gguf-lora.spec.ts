/**
 * GGUF LoRA export against llama.cpp itself (node-llama-cpp 3.21.1, CPU): a random F32 base of
 * each family plus the exported adapter, loaded by llama.cpp, gives fedtune's adapted
 * next-token probabilities within 1e-3 and the same 24-token greedy continuation (with a top-two
 * margin ≥ 1e-3 at every step, so equality is not a coin toss); `--lora-scaled` 0.5 equals
 * fedtune with alpha halved, and two adapters at once equal fedtune on the base with both merged
 * in (llama.cpp documents that scale multiplies the delta and adapters add up).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  closeGgufFile,
  createBase,
  ggufTextTokenizer,
  initBackend,
  loadGgufBase,
  mergeAdapterData,
  openGgufFile,
  readGgufBase,
  readGgufLora,
  writeGgufLora,
  type FrozenBase,
  type MatrixName,
  type TextTokenizer,
} from '../../../model/index.js';
import { adapterOf, greedy, maxAbsDiff, probsAfter, randomAdapterData, scaledAdapter } from '../../support/adapters.js';
import { family, writeFamilyGguf, type FamilyName } from '../../support/families.js';
import { openLlamaCpp } from '../../support/llama-cpp.js';

const PROMPTS = ['To be, or not to be: that is the question', 'Now is the winter of our discontent'];
/** Adapter seeds (chosen so every greedy step keeps a top-two margin ≥ 1e-3). */
const SEED: Record<string, number> = { llama3: 12, qwen2: 11, qwen3: 11 };
const TARGETS: Record<string, MatrixName[]> = {
  llama3: ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'],
  qwen2: ['wq', 'wk', 'wv', 'wo'],
  qwen3: ['wq', 'wk', 'w1', 'w2', 'w3'],
};

function tokenizerOf(path: string): TextTokenizer {
  const file = openGgufFile(path);
  try {
    return ggufTextTokenizer(file);
  } finally {
    closeGgufFile(file);
  }
}

describe('export: GGUF LoRA adapters in llama.cpp', function () {
  this.timeout(300_000);
  before(async () => {
    await initBackend();
  });

  for (const name of ['qwen2', 'qwen3', 'llama3'] as FamilyName[]) {
    describe(name, () => {
      let path: string;
      let base: FrozenBase;
      let tok: TextTokenizer;
      const dir = mkdtempSync(join(tmpdir(), `fedtune-lora-${name}-`));
      before(() => {
        path = writeFamilyGguf(family(name), 'F32');
        base = loadGgufBase(path, 'none');
        tok = tokenizerOf(path);
      });
      after(() => base?.dispose());

      it('base + exported adapter: probabilities within 1e-3 and the same 24-token greedy continuation', async () => {
        const data = randomAdapterData(base.config, base.sha256, { rank: 4, alpha: 8, targets: TARGETS[name] }, SEED[name]);
        const file = join(dir, 'adapter.gguf');
        writeGgufLora(file, data);
        const adapter = adapterOf(data);
        const lc = await openLlamaCpp(path, { lora: [{ path: file }] });
        try {
          for (const text of PROMPTS) {
            const ids = [...tok.encode(text)];
            const ours = probsAfter(base, ids, adapter);
            assert.ok(maxAbsDiff(ours, probsAfter(base, ids)) > 0.05, 'the adapter changes the output noticeably');
            const d = maxAbsDiff(ours, await lc.nextTokenProbs(ids));
            assert.ok(d < 1e-3, `${JSON.stringify(text)}: max |Δp| ${d.toExponential(2)}`);
          }
          const prompt = [...tok.encode(PROMPTS[0])];
          const ours = greedy(base, prompt, 24, adapter);
          assert.ok(Math.min(...ours.margins) >= 1e-3, `top-two margin ≥ 1e-3 at every step (min ${Math.min(...ours.margins).toExponential(2)})`);
          assert.notDeepEqual(ours.ids, greedy(base, prompt, 24).ids, 'the adapter changes the continuation');
          assert.deepEqual(await lc.greedy(prompt, 24), ours.ids);
        } finally {
          adapter.dispose();
          await lc.dispose();
        }
      });

      it('scale 0.5 multiplies the delta; two adapters add (llama.cpp --lora-scaled)', async () => {
        const one = randomAdapterData(base.config, base.sha256, { rank: 4, alpha: 8, targets: TARGETS[name] }, 21);
        const two = randomAdapterData(base.config, base.sha256, { rank: 2, alpha: 3, targets: ['wv', 'w2'] }, 22);
        const f1 = join(dir, 'one.gguf');
        const f2 = join(dir, 'two.gguf');
        writeGgufLora(f1, one, { type: 'F32' });
        writeGgufLora(f2, two);
        const ids = [...tok.encode(PROMPTS[1])];
        const half = adapterOf(scaledAdapter(one, 0.5));
        const lcHalf = await openLlamaCpp(path, { lora: [{ path: f1, scale: 0.5 }] });
        try {
          const ours = probsAfter(base, ids, half);
          assert.ok(maxAbsDiff(ours, probsAfter(base, ids)) > 0.02, 'the half adapter still changes the output');
          const d = maxAbsDiff(ours, await lcHalf.nextTokenProbs(ids));
          assert.ok(d < 1e-3, `scale 0.5: max |Δp| ${d.toExponential(2)}`);
        } finally {
          half.dispose();
          await lcHalf.dispose();
        }
        // both merged into the float32 weights (fedtune's merge, independent of the forward's LoRA path)
        const both = createBase(mergeAdapterData(mergeAdapterData(readGgufBase(path), one), scaledAdapter(two, 0.5)), 'none');
        const lcBoth = await openLlamaCpp(path, { lora: [{ path: f1 }, { path: f2, scale: 0.5 }] });
        try {
          const ours = probsAfter(both, ids);
          const onlyOne = adapterOf(one);
          try {
            assert.ok(maxAbsDiff(ours, probsAfter(base, ids, onlyOne)) > 0.01, 'the second adapter matters');
          } finally {
            onlyOne.dispose();
          }
          const d = maxAbsDiff(ours, await lcBoth.nextTokenProbs(ids));
          assert.ok(d < 1e-3, `two adapters: max |Δp| ${d.toExponential(2)}`);
        } finally {
          both.dispose();
          await lcBoth.dispose();
        }
      });

      it('reads back (F32) to the identical adapter, and F16 to within half-precision rounding', () => {
        const data = randomAdapterData(base.config, base.sha256, { rank: 3, alpha: 5, targets: TARGETS[name], seed: 7, freezeA: true }, 31);
        const f32 = join(dir, 'rt32.gguf');
        const f16 = join(dir, 'rt16.gguf');
        writeGgufLora(f32, data);
        writeGgufLora(f16, data, { type: 'F16' });
        const back = readGgufLora(f32, base);
        assert.deepEqual(back.lora, data.lora);
        assert.equal(back.baseSha256, data.baseSha256);
        assert.deepEqual(back.tensors.map((t) => [t.name, t.shape, Buffer.from(t.data.buffer).toString('base64')]), data.tensors.map((t) => [t.name, t.shape, Buffer.from(t.data.buffer).toString('base64')]));
        const half = readGgufLora(f16, base);
        half.tensors.forEach((t, i) => assert.ok(maxAbsDiff(t.data, data.tensors[i].data) <= 1e-3 * 0.5, t.name));
      });
    });
  }
});
