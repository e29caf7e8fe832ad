/**
 * `fedtune export`: take an adapter out of fedtune — a Hugging Face PEFT directory, a GGUF LoRA
 * adapter for llama.cpp, or the base with the adapter merged in (GGUF, or a HF directory with
 * --hf). The adapter is checked against --base (its SHA-256 and architecture) first. PEFT and
 * GGUF LoRA exports never load TensorFlow.js.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { readBaseInfo } from '../model/base-info.js';
import { checkAdapterBase, readAdapterData, type AdapterData } from '../model/export/adapter-data.js';
import { writeGgufLora } from '../model/export/gguf-lora.js';
import { writePeftAdapter } from '../model/export/peft.js';
import { CliError, oneOf, parse, required } from './args.js';
import { formatErrors } from './base-files.js';

/** Usage text. */
export const EXPORT_USAGE = `fedtune export --adapter FILE --base FILE|DIR --format peft|gguf-lora|merged --out PATH
               [--type F32|F16|Q8_0|BF16] [--hf (merged: a Hugging Face directory)] [--base-name NAME (peft)]`;

const FORMATS = ['peft', 'gguf-lora', 'merged'] as const;
type Format = (typeof FORMATS)[number];

/** Tensor types each output takes (first = default). */
const TYPES = {
  peft: ['F32', 'F16', 'BF16'],
  'gguf-lora': ['F32', 'F16'],
  'merged-gguf': ['F32', 'F16', 'Q8_0'],
  'merged-hf': ['F32', 'F16', 'BF16'],
} as const;

function existing(flag: string, path: string): string {
  if (!existsSync(path)) throw new CliError(`--${flag} ${path} does not exist`);
  return path;
}

/** Run the command. */
export async function exportCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    adapter: { type: 'string' },
    base: { type: 'string' },
    format: { type: 'string' },
    out: { type: 'string' },
    type: { type: 'string' },
    hf: { type: 'boolean' },
    'base-name': { type: 'string' },
  });
  const adapterPath = existing('adapter', required(v, 'adapter'));
  const basePath = existing('base', required(v, 'base'));
  if (v.format === undefined) throw new CliError(`--format is required (${FORMATS.join(', ')})`);
  const format = oneOf<Format>(v, 'format', FORMATS, 'peft');
  const out = required(v, 'out');
  if (v.hf && format !== 'merged') throw new CliError('--hf applies to --format merged only');
  if (v['base-name'] !== undefined && format !== 'peft') throw new CliError('--base-name applies to --format peft only');
  const kind = format === 'merged' ? (v.hf ? 'merged-hf' : 'merged-gguf') : format;
  const choices = TYPES[kind] as readonly string[];
  const type = oneOf<string>(v, 'type', choices, choices[0]);
  const data: AdapterData = formatErrors(() => readAdapterData(adapterPath));
  const info = formatErrors(() => readBaseInfo(basePath));
  checkAdapterBase(data, info, adapterPath, basePath);
  const summary = `rank ${data.lora.rank}, alpha ${data.lora.alpha}, targets ${data.lora.targets.join(',')}`;
  if (format === 'peft') {
    const name = typeof v['base-name'] === 'string' ? v['base-name'] : info.format === 'hf' ? resolve(basePath) : null;
    if (existsSync(out) && !statSync(out).isDirectory()) throw new CliError(`--out ${out} is a file; a PEFT adapter is a directory`);
    writePeftAdapter(out, data, { baseModelNameOrPath: name, dtype: type as 'F32' | 'F16' | 'BF16' });
    process.stdout.write(`exported PEFT adapter to ${out} (${summary}; base_model_name_or_path ${JSON.stringify(name)})\n`);
  } else if (format === 'gguf-lora') {
    writeGgufLora(out, data, { type: type as 'F32' | 'F16' });
    process.stdout.write(`exported GGUF LoRA adapter to ${out} (${type}, ${summary}); run: llama-cli -m ${basePath} --lora ${out}\n`);
  } else {
    const merged = await import('../model/export/merged.js');
    if (v.hf) formatErrors(() => merged.writeMergedHf(out, basePath, data, { dtype: type as 'F32' | 'F16' | 'BF16', adapterSource: adapterPath }));
    else formatErrors(() => merged.writeMergedGguf(out, basePath, data, { type: type as 'F32' | 'F16' | 'Q8_0', adapterSource: adapterPath }));
    process.stdout.write(`exported ${v.hf ? 'Hugging Face directory' : `${type} GGUF`} with the adapter merged to ${out} (${summary})\n`);
  }
}
