/**
 * Where the shared base model and corpora live. Each path is configurable (argument, then
 * environment variable) and defaults to the `shared/` folder beside the project when present:
 * FEDTUNE_MODEL_DIR (default ../shared/models/stories260K), FEDTUNE_DATA_DIR (../shared/data).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

function projectRoot(): string {
  // this file runs from <root>/dist/model/paths.js (or <root>/model/paths.ts under a TS loader)
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** The folder holding stories260K.bin, tok512.bin and golden/. */
export function defaultModelDir(): string {
  return resolve(process.env.FEDTUNE_MODEL_DIR ?? join(projectRoot(), '..', 'shared', 'models', 'stories260K'));
}

/** The folder of text corpora. */
export function defaultDataDir(): string {
  return resolve(process.env.FEDTUNE_DATA_DIR ?? join(projectRoot(), '..', 'shared', 'data'));
}

/** Default base checkpoint path. */
export function defaultBasePath(): string {
  return join(defaultModelDir(), 'stories260K.bin');
}

/** Default tokenizer path. */
export function defaultTokenizerPath(): string {
  return join(defaultModelDir(), 'tok512.bin');
}
