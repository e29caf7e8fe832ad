/** Running dist/cli/main.js as a child process, as a user would, for the CLI specs. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Path of the compiled CLI entry point. */
export const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** What a CLI run left behind. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Node flags that make any import of TensorFlow.js fail (a resolve hook registered before the
 * CLI starts), to check that a command reads headers only.
 */
export const NO_TFJS: readonly string[] = [
  '--import',
  `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent("export async function resolve(s, c, next) { if (s.startsWith('@tensorflow/')) throw new Error('TFJS_LOADED ' + s); return next(s, c); }"));`)}`,
];

/** Run `fedtune …args` (wasm backend) with extra node flags. */
export function fedtuneWith(nodeFlags: readonly string[], ...args: string[]): CliRun {
  const r = spawnSync(process.execPath, [...nodeFlags, MAIN, ...args], { encoding: 'utf8', env: { ...process.env, FEDTUNE_BACKEND: 'wasm' }, timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Run `fedtune …args` (wasm backend). */
export function fedtune(...args: string[]): CliRun {
  return fedtuneWith([], ...args);
}

/** Run, expect success, and parse stdout as exactly one JSON value. */
export function fedtuneJson<T>(...args: string[]): T {
  const r = fedtune(...args);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

/**
 * A failed command: non-zero exit, nothing on stdout, no stack trace, and exactly one
 * `fedtune …` line on stderr, matching `pattern`.
 */
export function failsWith(r: CliRun, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `expected failure, got: ${r.stdout}`);
  assert.equal(r.stdout, '');
  assert.doesNotMatch(r.stderr, /^\s+at /m, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('fedtune'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, pattern);
}
