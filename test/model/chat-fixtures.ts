/**
 * Test fixtures for chat formats: the real chat templates of Qwen2.5-Instruct, Qwen2-Instruct
 * and Meta-Llama-3-8B-Instruct (as their tokenizer_config.json `chat_template` holds them, quoted
 * as data), and small byte-level BPE tokenizers with the real ChatML / Llama 3 special tokens.
 */
import { BpeTokenizer } from '../../model/index.js';
import type { SpecialToken, TextTokenizer } from '../../model/text-tokenizer.js';
import { corpus } from '../helpers.js';
import { LLAMA3_REGEX, QWEN2_REGEX, tokenizerJson, trainMerges } from './bpe-train.js';

/** Qwen/Qwen2.5-*-Instruct `chat_template` (ChatML, default system message, Hermes tool calls). */
export const QWEN25_TEMPLATE = String.raw`{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
`;

/** Qwen/Qwen2-*-Instruct `chat_template`. */
export const QWEN2_TEMPLATE = String.raw`{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;

/** meta-llama/Meta-Llama-3-8B-Instruct `chat_template`. */
export const LLAMA3_TEMPLATE = String.raw`{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`;

/** google/gemma-2-it `chat_template` (neither ChatML nor Llama 3). */
export const GEMMA2_TEMPLATE = String.raw`{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}`;

/** Special tokens of Qwen2 / Llama 3 vocabularies (the chat-relevant ones). */
export const CHATML_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
export const LLAMA3_SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];

/** Wraps a BpeTokenizer as a TextTokenizer (until BpeTokenizer implements the interface itself). */
export function asTextTokenizer(bpe: BpeTokenizer, specials: readonly string[]): TextTokenizer {
  const special: SpecialToken[] = specials.map((text) => ({ id: bpe.encode(text, { bos: false })[0]!, text }));
  const stops = new Set(special.filter((s) => /end|eot/.test(s.text)).map((s) => s.id));
  return {
    kind: 'bpe', vocabSize: bpe.vocabSize, bosId: bpe.bosId, eosId: bpe.eosId, addBos: bpe.addBos,
    startId: bpe.bosId >= 0 ? bpe.bosId : bpe.eosId,
    isStop: (id) => stops.has(id),
    encode: (text, opts) => bpe.encode(text, opts),
    decodeBytes: (ids) => bpe.decodeBytes(ids),
    decode: (ids) => bpe.decode(ids),
    specialTokens: () => special,
  };
}

let cache: { json: { chatml: object; llama3: object }; chatml: TextTokenizer; llama3: TextTokenizer } | undefined;

/** Small trained byte-level BPE vocabularies with Qwen2's and Llama 3's pre-tokenizers and chat specials. */
export function chatTokenizers(): { json: { chatml: object; llama3: object }; chatml: TextTokenizer; llama3: TextTokenizer } {
  if (!cache) {
    const text = corpus('tinyshakespeare.txt').slice(0, 20_000) + '\n\n\n  \n\n Ünïcödé café 日本語 👩‍👩‍👧 '.repeat(50);
    const merges = trainMerges(text, 200);
    const chatml = tokenizerJson(merges, QWEN2_REGEX, CHATML_SPECIALS);
    const llama3 = tokenizerJson(merges, LLAMA3_REGEX, LLAMA3_SPECIALS);
    cache = {
      json: { chatml, llama3 },
      chatml: asTextTokenizer(BpeTokenizer.fromTokenizerJson(chatml), CHATML_SPECIALS),
      llama3: asTextTokenizer(BpeTokenizer.fromTokenizerJson(llama3), LLAMA3_SPECIALS),
    };
  }
  return cache;
}
