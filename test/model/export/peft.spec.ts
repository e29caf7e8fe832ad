/**
 * PEFT export and import. The files are checked against what PEFT itself writes (names from
 * peft/utils/save_and_load.py — `base_model.model.` + the transformers module path +
 * `lora_A.weight` / `lora_B.weight`, adapter name stripped —, shapes of nn.Linear weights
 * [r, in] / [out, r], config keys of peft/tuners/lora/config.py), spelled out here literally.
 * Export → import gives back the bit-identical adapter. The llama q/k permutation is checked
 * by hand: W_hf + s·B_peft·A_peft, from the HF checkpoint's own q/k weights, equals the HF
 * (halves) order of fedtune's W + s·B·A; without the permutation it would not.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ggmlDecode,
  mergeAdapterData,
  parseSafetensors,
  permutePairsToHalves,
  readPeftAdapter,
  writeHfModel,
  writePeftAdapter,
  type AdapterData,
  type LoadedBase,
} from '../../../model/index.js';
import { maxAbsDiff, randomAdapterData } from '../../support/adapters.js';
import { family, LLAMA3_SCALING, type FamilyName } from '../../support/families.js';

const ALL = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;
const HF_MODULE: Record<string, string> = { wq: 'self_attn.q_proj', wk: 'self_attn.k_proj', wv: 'self_attn.v_proj', wo: 'self_attn.o_proj', w1: 'mlp.gate_proj', w2: 'mlp.down_proj', w3: 'mlp.up_proj' };

function tensorsOf(path: string): Map<string, { shape: readonly number[]; values: Float32Array; dtype: string }> {
  const f = parseSafetensors(readFileSync(path), path);
  return new Map(f.tensors.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    return [t.name, { shape: t.shape, dtype: t.dtype, values: ggmlDecode(t.dtype, t.data, n, new Float32Array(n)) }];
  }));
}

const bits = (d: AdapterData): [string, readonly number[], string][] => d.tensors.map((t) => [t.name, t.shape, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64')]);

describe('export: PEFT adapters', () => {
  const fixtures = new Map<FamilyName, LoadedBase>();
  const loaded = (n: FamilyName): LoadedBase => {
    if (!fixtures.has(n)) fixtures.set(n, family(n).loaded);
    return fixtures.get(n)!;
  };

  it('adapter_config.json and adapter_model.safetensors are what PEFT writes', () => {
    const b = loaded('qwen2');
    const data = randomAdapterData(b.weights.config, b.sha256, { rank: 4, alpha: 16, dropout: 0.05, targets: ['wq', 'wv', 'w2'] }, 1);
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-peft-'));
    writePeftAdapter(dir, data, { baseModelNameOrPath: 'Qwen/Qwen2.5-0.5B' });
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.task_type, 'CAUSAL_LM');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 16);
    assert.equal(cfg.lora_dropout, 0.05);
    assert.equal(cfg.bias, 'none');
    assert.equal(cfg.fan_in_fan_out, false);
    assert.equal(cfg.use_rslora, false);
    assert.equal(cfg.use_dora, false);
    assert.equal(cfg.inference_mode, true);
    assert.equal(cfg.modules_to_save, null);
    assert.equal(cfg.base_model_name_or_path, 'Qwen/Qwen2.5-0.5B');
    assert.deepEqual(cfg.target_modules, ['q_proj', 'v_proj', 'down_proj']);
    assert.deepEqual(cfg.rank_pattern, {});
    assert.deepEqual(cfg.alpha_pattern, {});
    const file = parseSafetensors(readFileSync(join(dir, 'adapter_model.safetensors')));
    assert.equal(file.metadata.format, 'pt', 'transformers / PEFT save with metadata format "pt"');
    const c = b.weights.config;
    const want: [string, number[]][] = [];
    for (let l = 0; l < c.nLayers; l++) {
      want.push([`base_model.model.model.layers.${l}.self_attn.q_proj.lora_A.weight`, [4, c.dim]], [`base_model.model.model.layers.${l}.self_attn.q_proj.lora_B.weight`, [c.nHeads * (c.dim / c.nHeads), 4]]);
      want.push([`base_model.model.model.layers.${l}.self_attn.v_proj.lora_A.weight`, [4, c.dim]], [`base_model.model.model.layers.${l}.self_attn.v_proj.lora_B.weight`, [c.nKvHeads * (c.dim / c.nHeads), 4]]);
      want.push([`base_model.model.model.layers.${l}.mlp.down_proj.lora_A.weight`, [4, c.hiddenDim]], [`base_model.model.model.layers.${l}.mlp.down_proj.lora_B.weight`, [c.dim, 4]]);
    }
    assert.deepEqual(file.tensors.map((t) => [t.name, [...t.shape]]).sort(), want.sort());
    assert.ok(file.tensors.every((t) => t.dtype === 'F32'));
    // qwen rotates halves in both layouts: B is exported as held
    const t = tensorsOf(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(t.get('base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight')!.values, data.tensors.find((x) => x.name === 'layers.1.wq.lora_B')!.data);
  });

  for (const name of ['smollm2', 'llama3', 'qwen3'] as FamilyName[]) {
    it(`${name}: export → import gives back the identical adapter (bit for bit, seed and freezeA kept)`, () => {
      const b = loaded(name);
      const data = randomAdapterData(b.weights.config, b.sha256, { rank: 3, alpha: 7, targets: [...ALL], seed: 99, freezeA: true, dropout: 0.1 }, 2);
      const dir = mkdtempSync(join(tmpdir(), `fedtune-peft-${name}-`));
      writePeftAdapter(dir, data);
      const back = readPeftAdapter(dir, { config: b.weights.config, sha256: b.sha256 });
      assert.deepEqual(back.lora, data.lora);
      assert.equal(back.baseSha256, b.sha256);
      assert.deepEqual(bits(back), bits(data));
      // F16 files (as PEFT saves fp16 models) read back to within half-precision rounding
      const dir16 = mkdtempSync(join(tmpdir(), `fedtune-peft16-${name}-`));
      writePeftAdapter(dir16, data, { dtype: 'F16' });
      const half = readPeftAdapter(dir16, { config: b.weights.config, sha256: b.sha256 });
      half.tensors.forEach((t, i) => assert.ok(maxAbsDiff(t.data, data.tensors[i].data) < 1e-3, t.name));
    });
  }

  for (const name of ['llama3', 'smollm2'] as FamilyName[]) {
    it(`${name}: the exported adapter describes the same function on the HF model (q/k rows in halves order)`, () => {
      const b = loaded(name);
      const c = b.weights.config;
      const data = randomAdapterData(c, b.sha256, { rank: 4, alpha: 8, targets: [...ALL] }, 3);
      const hf = mkdtempSync(join(tmpdir(), `fedtune-hf-${name}-`));
      writeHfModel(hf, b, { dtype: 'F32', ...(name === 'llama3' ? { ropeScaling: LLAMA3_SCALING } : {}) });
      const peft = mkdtempSync(join(tmpdir(), `fedtune-peft-${name}-`));
      writePeftAdapter(peft, data);
      const W = tensorsOf(join(hf, 'model.safetensors'));
      const P = tensorsOf(join(peft, 'adapter_model.safetensors'));
      const merged = mergeAdapterData(b, data).weights;
      const s = data.lora.alpha / data.lora.rank;
      const r = data.lora.rank;
      for (let l = 0; l < c.nLayers; l++) {
        for (const m of ALL) {
          const w = W.get(`model.layers.${l}.${HF_MODULE[m]}.weight`)!;
          const A = P.get(`base_model.model.model.layers.${l}.${HF_MODULE[m]}.lora_A.weight`)!.values;
          const B = P.get(`base_model.model.model.layers.${l}.${HF_MODULE[m]}.lora_B.weight`)!.values;
          const [out, inp] = w.shape as [number, number];
          // by hand, in HF layout: W_hf + s · B_peft A_peft
          const byHand = Float32Array.from(w.values);
          for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) {
            let acc = 0;
            for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * inp + i];
            byHand[o * inp + i] += s * acc;
          }
          const heads = m === 'wq' ? c.nHeads : c.nKvHeads;
          const expected = m === 'wq' || m === 'wk' ? permutePairsToHalves(merged.layers[l][m], heads, inp) : merged.layers[l][m];
          assert.ok(maxAbsDiff(byHand, expected) < 1e-6, `layer ${l} ${m}: ${maxAbsDiff(byHand, expected).toExponential(2)}`);
          if (m === 'wq' || m === 'wk') {
            // control: fedtune's own (interleaved) B on the HF weights is a different function
            const raw = data.tensors.find((t) => t.name === `layers.${l}.${m}.lora_B`)!.data;
            const wrong = Float32Array.from(w.values);
            for (let o = 0; o < out; o++) for (let i = 0; i < inp; i++) {
              let acc = 0;
              for (let k = 0; k < r; k++) acc += raw[o * r + k] * A[k * inp + i];
              wrong[o * inp + i] += s * acc;
            }
            assert.ok(maxAbsDiff(wrong, expected) > 1e-2, 'without the permutation the function differs');
          }
        }
      }
    });
  }
});
