import { strict as assert } from 'node:assert';
import { hfConfigToLlama, ModelFormatError } from '../../model/index.js';

const SRC = '/models/x/config.json';

/** Llama-3.2-1B's published config.json (the fields fedtune reads). */
const LLAMA_32_1B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, bos_token_id: 128000, eos_token_id: 128001, head_dim: 64, hidden_act: 'silu',
  hidden_size: 2048, intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32,
  num_hidden_layers: 16, num_key_value_heads: 8, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', vocab_size: 128256,
};

/**
 * transformers' _compute_llama3_parameters written out independently: the scaled inverse
 * frequencies, returned here as divisors inv_freq / inv_freq_llama.
 */
function transformersLlama3Divisors(dim: number, base: number, factor: number, low: number, high: number, old: number): number[] {
  const out: number[] = [];
  const lowWavelen = old / low;
  const highWavelen = old / high;
  for (let k = 0; k < dim / 2; k++) {
    const invFreq = 1 / base ** ((2 * k) / dim);
    const wavelen = (2 * Math.PI) / invFreq;
    let llama = wavelen > lowWavelen ? invFreq / factor : invFreq;
    const smooth = (old / wavelen - low) / (high - low);
    const smoothed = ((1 - smooth) * llama) / factor + smooth * llama;
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    if (medium) llama = smoothed;
    out.push(invFreq / llama);
  }
  return out;
}

const isFormatError = (re: RegExp) => (e: unknown): boolean => e instanceof ModelFormatError && e.message.includes(SRC) && re.test(e.message);

describe('model/hf-config', () => {
  it('reads Llama-3.2-1B: GGUF layout (interleaved), tied head, llama3 rope factors as transformers computes them', () => {
    const c = hfConfigToLlama(LLAMA_32_1B, SRC);
    assert.deepEqual({ ...c, ropeFreqFactors: undefined }, {
      arch: 'llama', dim: 2048, hiddenDim: 8192, nLayers: 16, nHeads: 32, nKvHeads: 8, vocabSize: 128256, seqLen: 131072,
      sharedClassifier: true, normEps: 1e-5, ropeTheta: 500000, ropeStyle: 'interleaved', ropeFreqFactors: undefined,
    });
    const want = transformersLlama3Divisors(64, 500000, 32, 1, 4, 8192);
    assert.equal(c.ropeFreqFactors?.length, 32);
    c.ropeFreqFactors!.forEach((f, i) => assert.ok(Math.abs(f - want[i]) <= 1e-7 * want[i], `factor ${i}: ${f} vs ${want[i]}`));
    // the three regimes all occur: unscaled, blended, divided by factor
    assert.ok(want.some((f) => f === 1) && want.some((f) => f === 32) && want.some((f) => f > 1 && f < 32));
  });

  it('reads qwen2 (q/k/v biases, neox) and qwen3 (q/k norms, head_dim ≠ hidden/heads), with defaults for absent fields', () => {
    const q2 = hfConfigToLlama({ model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, use_sliding_window: false, rope_scaling: null }, SRC);
    assert.deepEqual(q2, { arch: 'qwen2', dim: 896, hiddenDim: 4864, nLayers: 24, nHeads: 14, nKvHeads: 2, vocabSize: 151936, seqLen: 32768, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1000000, ropeStyle: 'neox', attnBias: true });
    const q3 = hfConfigToLlama({ architectures: ['Qwen3ForCausalLM'], hidden_size: 1024, head_dim: 128, intermediate_size: 3072, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, vocab_size: 151936, max_position_embeddings: 40960, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true, attention_bias: false }, SRC);
    assert.deepEqual(q3, { arch: 'qwen3', dim: 1024, headDim: 128, hiddenDim: 3072, nLayers: 28, nHeads: 16, nKvHeads: 8, vocabSize: 151936, seqLen: 40960, sharedClassifier: true, normEps: 1e-6, ropeTheta: 1000000, ropeStyle: 'neox', qkNorm: true });
    // transformers' LlamaConfig defaults: kv heads = heads, rope_theta 10000, untied head
    const d = hfConfigToLlama({ model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100, max_position_embeddings: 256, rms_norm_eps: 1e-5, attention_bias: true }, SRC);
    assert.deepEqual(d, { arch: 'llama', dim: 64, hiddenDim: 128, nLayers: 2, nHeads: 4, nKvHeads: 4, vocabSize: 100, seqLen: 256, sharedClassifier: false, normEps: 1e-5, ropeTheta: 10000, ropeStyle: 'interleaved', attnBias: true });
  });

  it('refuses what it cannot run with a ModelFormatError naming config.json', () => {
    const ok = { model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100, max_position_embeddings: 256, rms_norm_eps: 1e-5 };
    assert.throws(() => hfConfigToLlama({ ...ok, model_type: 'mistral' }, SRC), isFormatError(/model_type "mistral".*llama, qwen2, qwen3/));
    assert.throws(() => hfConfigToLlama({ ...ok, model_type: undefined, architectures: ['GPT2LMHeadModel'] }, SRC), isFormatError(/GPT2LMHeadModel.*supported/));
    assert.throws(() => hfConfigToLlama({ ...ok, rope_scaling: { rope_type: 'yarn', factor: 4 } }, SRC), isFormatError(/"yarn"/));
    assert.throws(() => hfConfigToLlama({ ...ok, rope_scaling: { rope_type: 'llama3', factor: 8 } }, SRC), isFormatError(/low_freq_factor/));
    assert.throws(() => hfConfigToLlama({ ...ok, num_attention_heads: 6 }, SRC), isFormatError(/invalid model.*divisible/));
    assert.throws(() => hfConfigToLlama({ ...ok, hidden_size: '64' }, SRC), isFormatError(/hidden_size must be a number/));
    assert.throws(() => hfConfigToLlama({ ...ok, rms_norm_eps: undefined }, SRC), isFormatError(/rms_norm_eps/));
    assert.throws(() => hfConfigToLlama({ ...ok, hidden_act: 'gelu' }, SRC), isFormatError(/gelu/));
    assert.throws(() => hfConfigToLlama({ ...ok, mlp_bias: true }, SRC), isFormatError(/mlp_bias/));
    assert.throws(() => hfConfigToLlama([1, 2], SRC), isFormatError(/not a JSON object/));
  });
});
