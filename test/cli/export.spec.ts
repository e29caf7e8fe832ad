/**
 * `fedtune export` / `fedtune import` as a user runs them, proved by llama.cpp: an adapter
 * trained by `fedtune train` on stories260K.gguf, exported as a GGUF LoRA adapter and loaded by
 * llama.cpp with the base, continues a prompt exactly as `fedtune generate --adapter` does (24
 * greedy tokens, top probabilities within 1e-3); the merged GGUF does the same with no adapter;
 * PEFT and GGUF LoRA exports import back to the byte-identical adapter file without loading
 * TensorFlow.js; mismatches are refused with one line.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL } from '../helpers.js';
import { family, writeFamilyGguf } from '../support/families.js';
import { openLlamaCpp } from '../support/llama-cpp.js';
import { failsWith, fedtune, fedtuneJson, fedtuneWith, NO_TFJS } from './run-fedtune.js';

interface Generated {
  prompt_ids: number[];
  ids: number[];
  steps: { top: { id: number; p: number }[] }[];
}

describe('CLI: export and import', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-cli-export-'));
  const adapter = join(dir, 'adapter.safetensors');
  const prompt = 'Once upon a time, there was a little girl';

  before(() => {
    writeFileSync(join(dir, 'text.txt'), readFileSync(join(process.cwd(), '..', 'shared', 'data', 'tinystories-sample.txt'), 'utf8').slice(0, 20_000));
    const r = fedtune('train', '--base', MODEL.gguf, '--text', join(dir, 'text.txt'), '--out', adapter, '--steps', '6', '--batch', '2', '--seq-len', '32', '--lr', '0.02', '--rank', '4', '--targets', 'wq,wk,wv,wo,w1,w2,w3', '--seed', '3');
    assert.equal(r.code, 0, r.stderr);
  });

  /** fedtune's greedy continuation with top-5 probabilities, and llama.cpp's on the same ids. */
  async function agree(gen: Generated, ggufPath: string, lora?: string): Promise<void> {
    const lc = await openLlamaCpp(ggufPath, lora ? { lora: [{ path: lora }] } : {});
    try {
      assert.equal(gen.ids.length, 24);
      assert.deepEqual(await lc.greedy(gen.prompt_ids, 24), gen.ids);
      for (let k = 0; k < 24; k += 6) {
        const p = await lc.nextTokenProbs([...gen.prompt_ids, ...gen.ids.slice(0, k)]);
        const top = gen.steps[k].top;
        assert.ok(top[0].p - top[1].p >= 1e-3, `step ${k}: top-two margin ${top[0].p - top[1].p}`);
        for (const t of top) assert.ok(Math.abs(p[t.id] - t.p) < 1e-3, `step ${k} token ${t.id}: fedtune ${t.p}, llama.cpp ${p[t.id]}`);
      }
    } finally {
      await lc.dispose();
    }
  }

  it('gguf-lora: llama.cpp with base + adapter continues as `fedtune generate --adapter` does', async () => {
    const out = join(dir, 'adapter.gguf');
    const r = fedtune('export', '--adapter', adapter, '--base', MODEL.gguf, '--format', 'gguf-lora', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /llama-cli -m .* --lora /);
    const gen = fedtuneJson<Generated>('generate', '--base', MODEL.gguf, '--adapter', adapter, '--prompt', prompt, '--max-tokens', '24', '--json', '--top-probs', '5');
    const plain = fedtuneJson<Generated>('generate', '--base', MODEL.gguf, '--prompt', prompt, '--max-tokens', '24', '--json');
    assert.notDeepEqual(gen.ids, plain.ids, 'the trained adapter changes the continuation');
    await agree(gen, MODEL.gguf, out);
  });

  it('merged: the F32 GGUF, with no adapter, continues as fedtune with the adapter does', async () => {
    const out = join(dir, 'merged.gguf');
    const r = fedtune('export', '--adapter', adapter, '--base', MODEL.gguf, '--format', 'merged', '--type', 'F32', '--out', out);
    assert.equal(r.code, 0, r.stderr);
    const gen = fedtuneJson<Generated>('generate', '--base', MODEL.gguf, '--adapter', adapter, '--prompt', prompt, '--max-tokens', '24', '--json', '--top-probs', '5');
    await agree(gen, out);
    const again = fedtuneJson<Generated>('generate', '--base', out, '--prompt', prompt, '--max-tokens', '24', '--json');
    assert.deepEqual(again.ids, gen.ids, 'fedtune loads the merged file as a base');
  });

  it('peft and gguf-lora import back to the byte-identical adapter file, without TensorFlow.js', () => {
    const peft = join(dir, 'peft');
    const gguf = join(dir, 'rt.gguf');
    for (const args of [
      ['export', '--adapter', adapter, '--base', MODEL.gguf, '--format', 'peft', '--out', peft, '--base-name', 'karpathy/tinyllamas'],
      ['export', '--adapter', adapter, '--base', MODEL.gguf, '--format', 'gguf-lora', '--out', gguf],
      ['import', '--peft', peft, '--base', MODEL.gguf, '--out', join(dir, 'from-peft.safetensors')],
      ['import', '--gguf-lora', gguf, '--base', MODEL.gguf, '--out', join(dir, 'from-gguf.safetensors')],
    ]) {
      const r = fedtuneWith(NO_TFJS, ...args);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(JSON.parse(readFileSync(join(peft, 'adapter_config.json'), 'utf8')).base_model_name_or_path, 'karpathy/tinyllamas');
    const want = readFileSync(adapter);
    assert.ok(readFileSync(join(dir, 'from-peft.safetensors')).equals(want), 'PEFT round trip');
    assert.ok(readFileSync(join(dir, 'from-gguf.safetensors')).equals(want), 'GGUF LoRA round trip');
  });

  it('refuses a mismatched base, a wrong import, and bad flags with one line', () => {
    failsWith(fedtune('export', '--adapter', adapter, '--base', MODEL.bin, '--format', 'gguf-lora', '--out', join(dir, 'x.gguf')), /was trained for base sha256 270cba1bd5109f42.*give the base it was made for/);
    const qwen = writeFamilyGguf(family('qwen2'), 'F32');
    failsWith(fedtune('import', '--gguf-lora', join(dir, 'rt.gguf'), '--base', qwen, '--out', join(dir, 'y.safetensors')), /rt\.gguf is an adapter for architecture "llama", but the base is "qwen2"/);
    failsWith(fedtune('import', '--peft', join(dir, 'peft'), '--base', MODEL.bin, '--out', join(dir, 'y.safetensors')), /was exported from base sha256 270cba1bd5109f42…, not this base/);
    failsWith(fedtune('export', '--adapter', adapter, '--base', MODEL.gguf, '--format', 'peft', '--hf', '--out', join(dir, 'z')), /--hf applies to --format merged only/);
    failsWith(fedtune('export', '--adapter', adapter, '--base', MODEL.gguf, '--format', 'gguf-lora', '--type', 'Q8_0', '--out', join(dir, 'z')), /--type must be one of F32, F16/);
    failsWith(fedtune('import', '--peft', join(dir, 'peft'), '--gguf-lora', join(dir, 'rt.gguf'), '--base', MODEL.gguf, '--out', join(dir, 'z')), /exactly one of --peft DIR or --gguf-lora FILE/);
    failsWith(fedtune('export', '--adapter', adapter, '--base', MODEL.bin, '--format', 'merged', '--out', join(dir, 'm.gguf')), /was trained for base sha256/);
  });
});
