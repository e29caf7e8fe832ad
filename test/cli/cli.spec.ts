import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeAdapter, encodeLlama2cCheckpoint, LoraAdapter, parseLlama2cCheckpoint } from '../../model/index.js';
import { MODEL, realModel } from '../helpers.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');
const OZ = join(dirname(MODEL.dir), '..', 'data', 'wizard-of-oz.txt');

function fedtune(...args: string[]): { code: number; stdout: string; stderr: string } {
  return fedtuneEnv({}, ...args);
}

function fedtuneEnv(env: Record<string, string>, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, FEDTUNE_BACKEND: 'wasm', ...env }, timeout: 120000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A failed command says exactly one sentence on stderr after the backend/base log lines. */
function failsWith(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0);
  const errLines = r.stderr.trim().split('\n').filter((l) => l.startsWith('fedtune'));
  assert.equal(errLines.length, 1, r.stderr);
  assert.match(errLines[0], pattern);
}

describe('cli (fedtune command)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-cli-'));

  it('generate prints the prompt and the greedy continuation, exactly as run.c, and nothing else', async () => {
    const { golden } = await realModel();
    const r = fedtune('generate', '--base', MODEL.bin, '--tokenizer', MODEL.tok, '--prompt', golden.prompt, '--max-tokens', String(golden.greedy_ids.length), '--temperature', '0');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${golden.prompt}${golden.greedy_text}\n`);
    assert.match(r.stderr, /backend: wasm/);
  });

  it('generate reads a GGUF base with its own tokenizer and gives the same text', async () => {
    const { golden } = await realModel();
    const r = fedtune('generate', '--base', MODEL.gguf, '--prompt', golden.prompt, '--max-tokens', String(golden.greedy_ids.length));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${golden.prompt}${golden.greedy_text}\n`);
  });

  it('runs on two wasm threads (FEDTUNE_WASM_THREADS=2) with the same greedy output, and exits', async () => {
    const { golden } = await realModel();
    const r = fedtuneEnv({ FEDTUNE_WASM_THREADS: '2' }, 'generate', '--prompt', golden.prompt, '--max-tokens', String(golden.greedy_ids.length));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /backend: wasm \(simd, 2 threads\)/);
    assert.equal(r.stdout, `${golden.prompt}${golden.greedy_text}\n`);
  });

  it('eval --json prints loss and token count', () => {
    const r = fedtune('eval', '--base', MODEL.bin, '--tokenizer', MODEL.tok, '--text', OZ, '--max-tokens', '1000', '--json', '--quant', 'int8');
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { loss: number; tokens: number };
    assert.equal(j.tokens, 1000);
    assert.ok(j.loss > 2 && j.loss < 5, String(j.loss));
  });

  it('train writes an adapter that eval and generate accept', () => {
    const out = join(dir, 'oz.safetensors');
    const t = fedtune('train', '--text', OZ, '--out', out, '--steps', '3', '--rank', '4', '--targets', 'wq,wv', '--seq-len', '32', '--batch', '2', '--seed', '1', '--json');
    assert.equal(t.code, 0, t.stderr);
    assert.ok(existsSync(out));
    assert.equal((JSON.parse(t.stdout) as { steps: number }).steps, 3);
    const e = fedtune('eval', '--text', OZ, '--max-tokens', '300', '--adapter', out, '--json');
    assert.equal(e.code, 0, e.stderr);
    const g = fedtune('generate', '--prompt', 'Dorothy', '--max-tokens', '5', '--adapter', out);
    assert.equal(g.code, 0, g.stderr);
    assert.ok(g.stdout.startsWith('Dorothy'));
  });

  it('privacy epsilon and sigma expose the accountant', () => {
    const e = fedtune('privacy', 'epsilon', '--q', String(256 / 60000), '--sigma', '1.12', '--steps', '14063', '--delta', '1e-5', '--json');
    assert.equal(e.code, 0, e.stderr);
    assert.ok(Math.abs((JSON.parse(e.stdout) as { epsilon: number }).epsilon - 2.5187) < 2.5e-3);
    const s = fedtune('privacy', 'sigma', '--q', String(256 / 60000), '--steps', '14063', '--epsilon', '2.5187', '--delta', '1e-5', '--json');
    assert.equal(s.code, 0, s.stderr);
    assert.ok(Math.abs((JSON.parse(s.stdout) as { sigma: number }).sigma - 1.12) < 2e-3);
    failsWith(fedtune('privacy', 'epsilon', '--q', '2', '--sigma', '1', '--steps', '3', '--delta', '1e-5'), /--q must be at most 1/);
    failsWith(fedtune('privacy', 'guess'), /subcommand, epsilon or sigma/);
  });

  it('bad input exits non-zero with one clear sentence', async () => {
    failsWith(fedtune('eval', '--base', join(dir, 'missing.bin'), '--text', OZ, '--json'), /--base file .*missing.bin does not exist/);
    const junk = join(dir, 'junk.bin');
    writeFileSync(junk, Buffer.alloc(4096, 7));
    failsWith(fedtune('eval', '--base', junk, '--text', OZ, '--json'), /is not a llama2.c checkpoint|implies/);
    failsWith(fedtune('train', '--text', OZ, '--out', join(dir, 'x'), '--rank', '0'), /--rank must be greater than 0/);
    failsWith(fedtune('train', '--text', OZ, '--out', join(dir, 'x'), '--targets', 'wq,wz'), /unknown target "wz"/);
    failsWith(fedtune('generate', '--prompt', 'x', '--quant', 'int3'), /--quant must be one of none, int8, int4/);
    failsWith(fedtune('generate', '--prompt', 'x', '--bogus'), /Unknown option '--bogus'/);
    const long = fedtune('generate', '--prompt', 'once upon a time '.repeat(200), '--max-tokens', '1');
    failsWith(long, /--prompt has \d+ tokens, more than the model's context of 512/);
    assert.equal(long.stdout, '');
    failsWith(fedtuneEnv({ FEDTUNE_BACKEND: 'gpu' }, 'generate', '--prompt', 'x'), /got "gpu" \(from FEDTUNE_BACKEND\)/);
    // an adapter made for another base
    const { base } = await realModel();
    const other = parseLlama2cCheckpoint(encodeLlama2cCheckpoint({ ...base.weights, rmsFinal: base.weights.rmsFinal.map((v) => v * 2) }));
    const foreign = LoraAdapter.create(other.weights.config, other.sha256, {});
    writeFileSync(join(dir, 'foreign.safetensors'), encodeAdapter(foreign));
    foreign.dispose();
    failsWith(fedtune('generate', '--prompt', 'x', '--adapter', join(dir, 'foreign.safetensors')), /was trained for base model sha256 .* but the loaded base is/);
  });
});
