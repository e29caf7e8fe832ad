import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

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

/** Import `entry` (a module under dist/) in a fresh node with the hook in place; its exit code and output. */
function importWithoutTfjs(entry: string): Promise<{ code: number | null; out: string }> {
  const url = new URL(`../../${entry}`, import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(url)}); console.log('EXPORTS ' + Object.keys(m).length);`;
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

describe('proto and server load no TensorFlow.js', () => {
  it('the hook does catch a tfjs import (so the checks below can fail)', async () => {
    const { code, out } = await importWithoutTfjs('model/lora.js');
    assert.notEqual(code, 0);
    assert.match(out, /NO-TFJS: @tensorflow\/tfjs resolved from .*model\/lora\.js/);
  });

  for (const entry of ['proto/index.js', 'server/index.js']) {
    it(`importing dist/${entry} resolves no @tensorflow/ module`, async () => {
      const { code, out } = await importWithoutTfjs(entry);
      assert.doesNotMatch(out, /NO-TFJS/, out);
      assert.equal(code, 0, out);
      assert.match(out, /EXPORTS [1-9]/);
    });
  }
});
