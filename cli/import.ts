/**
 * `fedtune import`: bring in an adapter trained elsewhere — a Hugging Face PEFT directory or a
 * GGUF LoRA adapter — as a fedtune adapter file for --base, to continue tuning or to start a
 * program from. What does not fit the base is refused with one sentence. Never loads TensorFlow.js.
 */
import { existsSync } from 'node:fs';
import { readBaseInfo } from '../model/base-info.js';
import { writeAdapterData, type AdapterData } from '../model/export/adapter-data.js';
import { readGgufLora } from '../model/export/gguf-lora.js';
import { readPeftAdapter } from '../model/export/peft.js';
import { CliError, parse, required } from './args.js';
import { formatErrors } from './base-files.js';

/** Usage text. */
export const IMPORT_USAGE = 'fedtune import --peft DIR | --gguf-lora FILE --base FILE|DIR --out ADAPTER.safetensors';

/** Run the command. */
export async function importCommand(argv: string[]): Promise<void> {
  const v = parse(argv, {
    peft: { type: 'string' },
    'gguf-lora': { type: 'string' },
    base: { type: 'string' },
    out: { type: 'string' },
  });
  const peft = typeof v.peft === 'string' ? v.peft : undefined;
  const gguf = typeof v['gguf-lora'] === 'string' ? v['gguf-lora'] : undefined;
  if ((peft === undefined) === (gguf === undefined)) throw new CliError('give exactly one of --peft DIR or --gguf-lora FILE');
  const source = (peft ?? gguf) as string;
  if (!existsSync(source)) throw new CliError(`--${peft !== undefined ? 'peft' : 'gguf-lora'} ${source} does not exist`);
  const basePath = required(v, 'base');
  if (!existsSync(basePath)) throw new CliError(`--base ${basePath} does not exist`);
  const out = required(v, 'out');
  const info = formatErrors(() => readBaseInfo(basePath));
  const base = { config: info.config, sha256: info.sha256 };
  const data: AdapterData = formatErrors(() => (peft !== undefined ? readPeftAdapter(peft, base) : readGgufLora(gguf as string, base)));
  writeAdapterData(out, data);
  process.stdout.write(`imported ${source} as ${out} (rank ${data.lora.rank}, alpha ${data.lora.alpha}, targets ${data.lora.targets.join(',')}, base sha256 ${info.sha256.slice(0, 12)}…)\n`);
}
