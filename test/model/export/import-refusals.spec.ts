/**
 * Imports refuse what does not fit, each with one sentence naming the file: a PEFT directory or
 * GGUF adapter for another base (recorded SHA-256, architecture or shapes), a rank that
 * disagrees with the tensors, targets fedtune cannot adapt or without tensors, missing layers,
 * and PEFT variants fedtune cannot represent (DoRA, per-module ranks, biases).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodeGguf,
  encodeSafetensors,
  ggufLoraInput,
  ModelFormatError,
  parseSafetensors,
  readGgufLora,
  readPeftAdapter,
  writeGgufLora,
  writePeftAdapter,
  type AdapterData,
  type BaseIdentity,
  type LoadedBase,
} from '../../../model/index.js';
import { randomAdapterData } from '../../support/adapters.js';
import { family, familyGguf } from '../../support/families.js';

/** A one-line message naming `where`. */
function refused(where: string, pattern: RegExp): (e: Error) => boolean {
  return (e: Error) => {
    assert.ok(e instanceof ModelFormatError, `${e.name}: ${e.message}`);
    assert.ok(e.message.includes(where), `names ${where}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.match(e.message, pattern);
    return true;
  };
}

describe('export: imports refuse adapters that do not fit', () => {
  let qwen2: LoadedBase;
  let qwen3: LoadedBase;
  let id2: BaseIdentity;
  let id3: BaseIdentity;
  let data: AdapterData;
  before(() => {
    qwen2 = family('qwen2').loaded;
    qwen3 = family('qwen3').loaded;
    id2 = { config: qwen2.weights.config, sha256: qwen2.sha256 };
    id3 = { config: qwen3.weights.config, sha256: qwen3.sha256 };
    data = randomAdapterData(id2.config, id2.sha256, { rank: 4, alpha: 8, targets: ['wq', 'wv'] }, 5);
  });

  function peftDir(edit?: (cfg: Record<string, unknown>) => void, editTensors?: (t: ReturnType<typeof parseSafetensors>['tensors']) => ReturnType<typeof parseSafetensors>['tensors']): string {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-peft-bad-'));
    writePeftAdapter(dir, data);
    if (edit) {
      const p = join(dir, 'adapter_config.json');
      const cfg = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      edit(cfg);
      writeFileSync(p, JSON.stringify(cfg));
    }
    if (editTensors) {
      const p = join(dir, 'adapter_model.safetensors');
      const f = parseSafetensors(readFileSync(p));
      writeFileSync(p, encodeSafetensors(editTensors(f.tensors), { format: 'pt' }));
    }
    return dir;
  }

  it('PEFT: another base (recorded SHA-256, or shapes of another architecture)', () => {
    const dir = peftDir();
    const otherSha = { ...id2, sha256: 'ef'.repeat(32) };
    assert.throws(() => readPeftAdapter(dir, otherSha), refused(dir, /was exported from base sha256 .* not this base/));
    const plain = peftDir(undefined, (t) => t); // fedtune's record dropped: only shapes tell
    assert.throws(() => readPeftAdapter(plain, { ...id3, sha256: id3.sha256 }), refused(plain, /has shape \[.*\] but rank 4 on this base needs/));
  });

  it('PEFT: a rank that disagrees with the tensors', () => {
    const dir = peftDir((c) => void (c.r = 8));
    assert.throws(() => readPeftAdapter(dir, id2), refused(dir, /has shape \[4, 256\] but rank 8 on this base needs \[8, 256\]/));
  });

  it('PEFT: targets fedtune cannot adapt, or without tensors; missing layers', () => {
    const emb = peftDir((c) => void (c.target_modules = ['q_proj', 'v_proj', 'embed_tokens']));
    assert.throws(() => readPeftAdapter(emb, id2), refused(emb, /targets "embed_tokens", which fedtune cannot adapt/));
    const extra = peftDir((c) => void (c.target_modules = ['q_proj', 'v_proj', 'o_proj']));
    assert.throws(() => readPeftAdapter(extra, id2), refused(extra, /has no tensors for target module o_proj/));
    const lmHead = peftDir(undefined, (t) => [...t, { name: 'base_model.model.lm_head.lora_A.weight', dtype: 'F32', shape: [1, 1], data: new Uint8Array(4) }]);
    assert.throws(() => readPeftAdapter(lmHead, id2), refused(lmHead, /holds tensor base_model\.model\.lm_head\.lora_A\.weight, which is not/));
    const oneLayer = peftDir(undefined, (t) => t.filter((x) => !x.name.includes('layers.1.')));
    assert.throws(() => readPeftAdapter(oneLayer, id2), refused(oneLayer, /missing tensor layers\.1\.wq\.lora_A/));
  });

  it('PEFT: variants fedtune cannot represent', () => {
    for (const [edit, re] of [
      [(c: Record<string, unknown>) => void (c.use_dora = true), /DoRA/],
      [(c: Record<string, unknown>) => void (c.rank_pattern = { q_proj: 8 }), /rank_pattern/],
      [(c: Record<string, unknown>) => void (c.bias = 'lora_only'), /trains biases/],
      [(c: Record<string, unknown>) => void (c.peft_type = 'IA3'), /only LORA/],
    ] as const) {
      const dir = peftDir(edit);
      assert.throws(() => readPeftAdapter(dir, id2), refused(dir, re));
    }
  });

  it('GGUF LoRA: another architecture, another base, a model file, mixed ranks, wrong shapes', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-gguf-bad-'));
    const file = join(dir, 'a.gguf');
    writeGgufLora(file, data);
    assert.throws(() => readGgufLora(file, id3), refused(file, /is an adapter for architecture "qwen2", but the base is "qwen3"/));
    assert.throws(() => readGgufLora(file, { ...id2, sha256: '12'.repeat(32) }), refused(file, /was exported from base sha256 .* not this base/));
    const model = join(dir, 'model.gguf');
    writeFileSync(model, familyGguf(family('qwen2')));
    assert.throws(() => readGgufLora(model, id2), refused(model, /is not a GGUF LoRA adapter/));
    const input = ggufLoraInput(data);
    const strip = input.metadata.filter((m) => !m.key.startsWith('fedtune.'));
    // a rank-2 pair in a rank-4 file
    const mixed = join(dir, 'mixed.gguf');
    const small = ggufLoraInput(randomAdapterData(id2.config, id2.sha256, { rank: 2, targets: ['wq', 'wv'] }, 6));
    writeFileSync(mixed, encodeGguf({ metadata: strip, tensors: [...input.tensors.filter((t) => !t.name.startsWith('blk.1.attn_v')), ...small.tensors.filter((t) => t.name.startsWith('blk.1.attn_v'))] }));
    assert.throws(() => readGgufLora(mixed, id2), refused(mixed, /mixes ranks 4 and 2/));
    // a qwen2 adapter without fedtune's record, onto a qwen2-shaped base of other widths
    const narrow = { ...id2, config: { ...id2.config, dim: 128, hiddenDim: 256 } };
    const bare = join(dir, 'bare.gguf');
    writeFileSync(bare, encodeGguf({ metadata: strip, tensors: input.tensors }));
    assert.throws(() => readGgufLora(bare, narrow), refused(bare, /has dims \[256, 4\] but rank 4 on this base needs \[128, 4\]/));
  });
});
