// Install-time build of fedtune's optional native addon (run by `npm install` / `npm ci` as the
// package's "install" script). It never fails the install and never downloads: without a compiler,
// node-gyp or local Node headers it records why in native/build-status.json and exits 0, and
// fedtune runs on the wasm path. FEDTUNE_NATIVE_BUILD=0 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const statusFile = join(here, 'build-status.json');

function finish(ok, reason) {
  writeFileSync(statusFile, `${JSON.stringify({ ok, reason, node: process.version, date: new Date().toISOString() })}\n`);
  if (ok) console.log('fedtune: native addon built (native/build/Release/fedtune_native.node)');
  else console.warn(`fedtune: native addon not built, using the wasm path: ${reason}`);
  process.exit(0);
}

function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp, join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed as a package
  }
  return candidates.find((p) => p && existsSync(p));
}

/** Node headers without a download: npm's nodedir, the running Node's prefix, or node-gyp's cache. */
function headers() {
  if (process.env.npm_config_nodedir) return { args: [] };
  const prefix = join(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return { args: [`--nodedir=${prefix}`] };
  const version = process.version.slice(1);
  const caches = [process.env.npm_config_devdir, join(os.homedir(), '.cache', 'node-gyp'), join(os.homedir(), 'Library', 'Caches', 'node-gyp'), process.env.LOCALAPPDATA && join(process.env.LOCALAPPDATA, 'node-gyp', 'Cache')];
  for (const c of caches) if (c && existsSync(join(c, version, 'include', 'node', 'node_api.h'))) return { args: [`--devdir=${c}`] };
  return undefined;
}

try {
  if (process.env.FEDTUNE_NATIVE_BUILD === '0') finish(false, 'skipped (FEDTUNE_NATIVE_BUILD=0)');
  rmSync(statusFile, { force: true });
  const gyp = nodeGyp();
  if (!gyp) finish(false, 'node-gyp not found (it ships with npm)');
  const h = headers();
  if (!h) finish(false, `no local Node ${process.version} headers (node-gyp would download them; set npm_config_nodedir to a Node source or headers folder)`);
  const r = spawnSync(process.execPath, [gyp, 'rebuild', '--release', ...h.args], { cwd: here, encoding: 'utf8', timeout: 300_000, env: { ...process.env, npm_config_offline: 'true' } });
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.error) finish(false, `node-gyp could not run: ${r.error.message}`);
  if (r.status !== 0) {
    const errs = log.split('\n').filter((l) => /error|not found|ERR!/i.test(l)).slice(0, 6).join(' | ');
    finish(false, `node-gyp exited with ${r.status}: ${errs || log.slice(-400)}`);
  }
  if (!existsSync(join(here, 'build', 'Release', 'fedtune_native.node'))) finish(false, 'node-gyp succeeded but produced no fedtune_native.node');
  finish(true, 'built');
} catch (e) {
  finish(false, `unexpected error: ${e && e.message}`);
}
