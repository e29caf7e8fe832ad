/** Loading the base, tokenizer and adapter for a CLI command, with the shared options. */
import { existsSync, readFileSync } from 'node:fs';
import {
  type FrozenBase,
  initBackend,
  loadAdapter,
  openBase,
  type OpenedBase,
  type TextTokenizer,
  type BackendChoice,
  type LoraAdapter,
  type QuantMode,
} from '../model/index.js';
import { QUANT_MODES } from '../server/config-names.js';
import { CliError, log, oneOf } from './args.js';
import { baseFiles, formatErrors } from './base-files.js';

/** Options every model command accepts. */
export const MODEL_OPTIONS = {
  base: { type: 'string' },
  tokenizer: { type: 'string' },
  quant: { type: 'string' },
  adapter: { type: 'string' },
  backend: { type: 'string' },
} as const;

/** What a model command works with. */
export interface LoadedModel {
  readonly base: FrozenBase;
  readonly tokenizer: TextTokenizer;
  readonly adapter?: LoraAdapter;
}

/** Start the backend (logging which), then load base, tokenizer and optional adapter. */
export async function loadModel(v: Record<string, string | boolean | undefined>, opts: { adapter?: boolean } = { adapter: true }): Promise<LoadedModel> {
  const backend = v.backend === undefined ? undefined : oneOf<BackendChoice>(v, 'backend', ['auto', 'wasm', 'cpu', 'tensorflow'], 'auto');
  const quant = oneOf<QuantMode>(v, 'quant', QUANT_MODES, 'none');
  const { basePath, tokenizerPath } = baseFiles(v);
  const info = await initBackend(backend);
  log(`backend: ${info.description}`);
  const opened: OpenedBase = formatErrors(() => openBase(basePath, quant, { tokenizerPath }));
  const { base, tokenizer } = opened;
  const mem = base.memory();
  log(`base: ${basePath} sha256 ${base.sha256.slice(0, 12)}… quant ${quant}, ${mem.bytes} bytes (${mem.bytesPerParam.toFixed(3)} bytes/param)`);
  let adapter: LoraAdapter | undefined;
  if (opts.adapter && typeof v.adapter === 'string') {
    adapter = loadAdapter(v.adapter, base);
    log(`adapter: ${v.adapter} rank ${adapter.config.rank} targets ${adapter.config.targets.join(',')}`);
  }
  return { base, tokenizer, adapter };
}

/** Read a UTF-8 text file named by a flag, with a clear error. */
export function readText(flag: string, path: string): string {
  if (!existsSync(path)) throw new CliError(`--${flag} file ${path} does not exist`);
  const text = readFileSync(path, 'utf8');
  if (text.trim() === '') throw new CliError(`--${flag} file ${path} is empty`);
  return text;
}
