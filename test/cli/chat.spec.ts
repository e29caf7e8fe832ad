import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chatStyleFor, readChatData } from '../../cli/chat.js';
import { CliError } from '../../cli/args.js';
import { QWEN25_DEFAULT_SYSTEM } from '../../model/index.js';
import { MODEL } from '../helpers.js';
import { chatTokenizers, LLAMA3_TEMPLATE, QWEN25_TEMPLATE } from '../model/chat-fixtures.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

describe('cli/chat (fedtune train --chat)', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-chat-'));
  const jsonl = join(dir, 'chats.jsonl');
  writeFileSync(jsonl, [
    JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello there.' }] }),
    JSON.stringify({ messages: [{ role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Goodbye.' }] }),
  ].join('\n'));

  it('picks the chat style from --chat-format, a template file (Jinja or tokenizer_config.json), or the vocabulary', () => {
    const { chatml, llama3 } = chatTokenizers();
    assert.deepEqual(chatStyleFor(chatml, undefined, undefined), { format: 'chatml' });
    assert.deepEqual(chatStyleFor(llama3, undefined, undefined), { format: 'llama3' });
    const cfg = join(dir, 'tokenizer_config.json');
    writeFileSync(cfg, JSON.stringify({ chat_template: QWEN25_TEMPLATE }));
    assert.deepEqual(chatStyleFor(chatml, undefined, cfg), { format: 'chatml', defaultSystem: QWEN25_DEFAULT_SYSTEM });
    assert.deepEqual(chatStyleFor(chatml, 'chatml', cfg), { format: 'chatml', defaultSystem: QWEN25_DEFAULT_SYSTEM });
    const jinja = join(dir, 'llama3.jinja');
    writeFileSync(jinja, LLAMA3_TEMPLATE);
    assert.deepEqual(chatStyleFor(llama3, undefined, jinja), { format: 'llama3' });
    assert.throws(() => chatStyleFor(chatml, 'gemma', undefined), (e: unknown) => e instanceof CliError && /--chat-format must be one of chatml, llama3/.test(e.message));
    assert.throws(() => chatStyleFor({}, undefined, undefined), (e: unknown) => e instanceof CliError && /neither ChatML .* nor Llama 3/.test(e.message));
  });

  it('reads chat JSONL into tokens with the assistant-only mask, and names a bad line', () => {
    const { chatml } = chatTokenizers();
    const d = readChatData('text', jsonl, chatml, { format: 'chatml' });
    assert.equal(chatml.decode(d.tokens.filter((_, i) => d.lossMask[i])), 'Hello there.<|im_end|>Goodbye.<|im_end|>');
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"messages":[{"role":"user","content":"x"}]}\n{"messages":[{"role":"bot","content":"x"}]}\n');
    assert.throws(() => readChatData('text', bad, chatml, { format: 'chatml' }), (e: unknown) => e instanceof CliError && /^--text: .*bad\.jsonl line 2: messages\[0\]\.role must be/.test(e.message));
    const noReply = join(dir, 'noreply.jsonl');
    writeFileSync(noReply, '{"messages":[{"role":"user","content":"x"}]}\n');
    assert.throws(() => readChatData('text', noReply, chatml, { format: 'chatml' }), /has no assistant reply to train on/);
  });

  it('fedtune train --chat refuses a base whose tokenizer has no chat format, in one sentence', () => {
    const r = spawnSync(process.execPath, [MAIN, 'train', '--chat', '--text', jsonl, '--out', join(dir, 'a.bin'), '--base', MODEL.bin, '--tokenizer', MODEL.tok, '--steps', '1'],
      { encoding: 'utf8', env: { ...process.env, FEDTUNE_BACKEND: 'wasm' }, timeout: 60_000 });
    assert.notEqual(r.status, 0);
    const errs = r.stderr.trim().split('\n').filter((l) => l.startsWith('fedtune'));
    assert.equal(errs.length, 1, r.stderr);
    assert.match(errs[0]!, /neither ChatML .* nor Llama 3 .* special tokens; give --chat-format or --chat-template/);
    const r2 = spawnSync(process.execPath, [MAIN, 'train', '--chat-format', 'chatml', '--text', jsonl, '--out', join(dir, 'a.bin')], { encoding: 'utf8', timeout: 60_000 });
    assert.match(r2.stderr, /--chat-format and --chat-template need --chat/);
  });
});
