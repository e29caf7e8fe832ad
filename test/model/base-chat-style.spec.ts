/** A base's chat style read from the base: GGUF tokenizer.chat_template, HF tokenizer_config.json, else special tokens. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { baseChatStyle, baseChatTemplate, bpeTokenizerEntries, encodeGguf, ggufModelInput, ggufTextTokenizer, ModelFormatError, parseGguf, QWEN25_DEFAULT_SYSTEM, Tokenizer } from '../../model/index.js';
import { MODEL } from '../helpers.js';
import { family, familyGguf } from '../support/families.js';
import { GEMMA2_TEMPLATE, LLAMA3_TEMPLATE, QWEN25_TEMPLATE } from './chat-fixtures.js';

describe('model: baseChatStyle', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-chatstyle-'));
  const qwen = family('qwen2');
  const ggufWith = (name: string, chatTemplate: string | undefined): string => {
    const path = join(dir, name);
    writeFileSync(path, encodeGguf(ggufModelInput(qwen.loaded, {
      tokenizer: bpeTokenizerEntries({ tokens: qwen.tokens, merges: qwen.merges, tokenTypes: qwen.tokenTypes, pre: qwen.pre, bosId: qwen.bosId, eosId: qwen.eosId, addBos: qwen.addBos, chatTemplate }),
    })));
    return path;
  };
  const tokOf = (path: string) => ggufTextTokenizer(parseGguf(readFileSync(path), path));

  it('a GGUF with Qwen2.5\'s template: ChatML with Qwen2.5\'s default system message', () => {
    const p = ggufWith('qwen25.gguf', QWEN25_TEMPLATE);
    assert.equal(baseChatTemplate(p), QWEN25_TEMPLATE);
    assert.deepEqual(baseChatStyle(p, tokOf(p)), { format: 'chatml', defaultSystem: QWEN25_DEFAULT_SYSTEM });
  });

  it('a GGUF without a template falls back to its special tokens (<|im_start|>, <|im_end|> → ChatML)', () => {
    const p = join(dir, 'plain.gguf');
    writeFileSync(p, familyGguf(qwen));
    assert.equal(baseChatTemplate(p), undefined);
    assert.deepEqual(baseChatStyle(p, tokOf(p)), { format: 'chatml' });
  });

  it('a GGUF whose template is neither ChatML nor Llama 3 has no style, whatever its tokens', () => {
    const p = ggufWith('gemma.gguf', GEMMA2_TEMPLATE);
    assert.equal(baseChatStyle(p, tokOf(p)), undefined);
  });

  it('a llama2.c base and the stories260K GGUF have none', () => {
    assert.equal(baseChatStyle(MODEL.bin, Tokenizer.fromFile(MODEL.tok, 512)), undefined);
    assert.equal(baseChatStyle(MODEL.gguf, tokOf(MODEL.gguf)), undefined);
  });

  it('a Hugging Face directory: tokenizer_config.json chat_template (a string, or the "default" of a list)', () => {
    const hf = join(dir, 'hf');
    mkdirSync(hf);
    const noSpecials = { specialTokens: () => [] };
    assert.equal(baseChatTemplate(hf), undefined);
    writeFileSync(join(hf, 'tokenizer_config.json'), JSON.stringify({ chat_template: LLAMA3_TEMPLATE }));
    assert.deepEqual(baseChatStyle(hf, noSpecials), { format: 'llama3' });
    writeFileSync(join(hf, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'x' }, { name: 'default', template: QWEN25_TEMPLATE }] }));
    assert.deepEqual(baseChatStyle(hf, noSpecials), { format: 'chatml', defaultSystem: QWEN25_DEFAULT_SYSTEM });
    writeFileSync(join(hf, 'tokenizer_config.json'), JSON.stringify({ chat_template: 7 }));
    assert.throws(() => baseChatTemplate(hf), (e: unknown) => e instanceof ModelFormatError && /tokenizer_config\.json has a chat_template that is neither a string nor a list/.test(e.message));
  });
});
