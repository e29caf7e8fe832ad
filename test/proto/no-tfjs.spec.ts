import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL } from '../helpers.js';

/**
 * A resolve hook (run through `node:module`'s register()) that refuses any specifier starting
 * with `@tensorflow/`, naming the module that asked for it. Registered before the entry module
 * loads, so every import in the graph goes through it.
 */
const HOOK = `
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('@tensorflow/')) {
    throw new Error('NO-TFJS: ' + specifier + ' resolved from ' + context.parentURL);
  }
  return next(specifier, context);
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOK)}`)});`;

/** URL of a module under dist/. */
const dist = (entry: string): string => new URL(`../../${entry}`, import.meta.url).href;

/** Run an ES module script in a fresh node with the hook in place; its exit code and output. */
function runWithoutTfjs(script: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (out += b.toString('utf8')));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Import a dist/ module under the hook. */
const importWithoutTfjs = (entry: string) => runWithoutTfjs(`const m = await import(${JSON.stringify(dist(entry))}); console.log('EXPORTS ' + Object.keys(m).length);`);

describe('proto, server and aggregators load no TensorFlow.js', () => {
  it('the hook does catch a tfjs import (so the checks below can fail)', async () => {
    const { code, out } = await importWithoutTfjs('model/lora.js');
    assert.notEqual(code, 0);
    assert.match(out, /NO-TFJS: @tensorflow\/tfjs resolved from .*model\/lora\.js/);
  });

  for (const entry of ['proto/index.js', 'server/index.js', 'aggregators/index.js', 'privacy/index.js']) {
    it(`importing dist/${entry} resolves no @tensorflow/ module`, async () => {
      const { code, out } = await importWithoutTfjs(entry);
      assert.doesNotMatch(out, /NO-TFJS/, out);
      assert.equal(code, 0, out);
      assert.match(out, /EXPORTS [1-9]/);
    });
  }

  it('a coordinator starts a program on the real base (base info, initial adapter published) and stops without tfjs', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'fedtune-notf-'));
    try {
      const program = {
        id: 'notf',
        base: MODEL.bin,
        tokenizer: MODEL.tok,
        enrolmentToken: 'notf-token',
        lora: { rank: 4, alpha: 8, targets: ['wq', 'wv'], seed: 5 },
        training: { steps: 2, batchSize: 2, seqLen: 32, lr: 1e-2, quant: 'int8' },
        cohortSize: 2,
        minUpdates: 2,
        minContributors: 2,
        rounds: 1,
      };
      const { code, out } = await runWithoutTfjs(`
        const { programSpec, startCoordinator } = await import(${JSON.stringify(dist('server/index.js'))});
        const running = await startCoordinator({ dataDir: ${JSON.stringify(dataDir)}, programs: [programSpec(${JSON.stringify(program)})] });
        const state = running.coordinator.program('notf');
        console.log('STARTED ' + running.port + ' ' + state.base.sha256 + ' ' + state.flatLength);
        await running.shutdown(1000);`);
      assert.doesNotMatch(out, /NO-TFJS/, out);
      assert.equal(code, 0, out);
      assert.match(out, /STARTED [1-9]\d* [0-9a-f]{64} [1-9]\d*/, out);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
  it('the `fedtune coordinator` process listens and stops on SIGTERM without tfjs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedtune-notf-cli-'));
    try {
      const config = join(dir, 'programs.json');
      writeFileSync(config, JSON.stringify({ programs: [{ id: 'notf', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: 'notf-token', lora: { rank: 2, targets: ['wq'] }, cohortSize: 2, minUpdates: 2, minContributors: 2, rounds: 1 }] }));
      const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(REGISTER)}`, new URL('../../cli/main.js', import.meta.url).pathname, 'coordinator', '--config', config, '--port', '0', '--data', join(dir, 'data'), '--insecure'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const listening = new Promise<void>((resolve) => {
        const on = (b: Buffer) => {
          out += b.toString('utf8');
          if (out.includes('"listening"')) resolve();
        };
        child.stdout.on('data', on);
        child.stderr.on('data', on);
      });
      const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
      await Promise.race([listening, closed]);
      child.kill('SIGTERM');
      const code = await closed;
      assert.doesNotMatch(out, /NO-TFJS/, out);
      assert.match(out, /listening/, out);
      assert.equal(code, 0, out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
