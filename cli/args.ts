/** Small helpers shared by the CLI commands: option parsing and validation with flag names. */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A user error: printed as one sentence, exit code 2. */
export class CliError extends Error {
  override name = 'CliError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parse argv with node:util parseArgs, turning its errors into CliErrors. */
export function parse<T extends Options>(argv: string[], options: T): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new CliError((e as Error).message.replace(/\. To specify a positional.*$/s, '').replace(/\s+$/, ''));
  }
}

/** A required string option. */
export function required(v: Record<string, string | boolean | undefined>, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || x === '') throw new CliError(`--${name} is required`);
  return x;
}

/** A numeric option: undefined when absent, else validated. */
export function num(
  v: Record<string, string | boolean | undefined>,
  name: string,
  rule: { integer?: boolean; min?: number; max?: number; minExclusive?: boolean } = {},
): number | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  const x = Number(raw);
  const kind = rule.integer ? 'an integer' : 'a number';
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(x) || (rule.integer && !Number.isInteger(x))) {
    throw new CliError(`--${name} must be ${kind}, got "${raw}"`);
  }
  if (rule.min !== undefined && (rule.minExclusive ? x <= rule.min : x < rule.min)) {
    throw new CliError(`--${name} must be ${rule.minExclusive ? 'greater than' : 'at least'} ${rule.min}, got ${raw}`);
  }
  if (rule.max !== undefined && x > rule.max) throw new CliError(`--${name} must be at most ${rule.max}, got ${raw}`);
  return x;
}

/** One of a fixed set of strings. */
export function oneOf<T extends string>(v: Record<string, string | boolean | undefined>, name: string, choices: readonly T[], dflt: T): T {
  const x = v[name];
  if (x === undefined) return dflt;
  if (typeof x !== 'string' || !(choices as readonly string[]).includes(x)) throw new CliError(`--${name} must be one of ${choices.join(', ')}, got "${String(x)}"`);
  return x as T;
}

/** Log a line to stderr (stdout is reserved for results). */
export function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}
