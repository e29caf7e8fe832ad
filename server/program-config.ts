/**
 * A program is one partner's tuning job. Its configuration is one readonly object with
 * documented defaults, validated once by the config schema (server/config-schema.ts, which
 * holds every default and rule). A coordinator config file holds `{ "programs": [ … ] }` (or a
 * single program object); relative paths in it are relative to the file.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError, type ConfigIssue, issueSentence } from './config-issues.js';
import { configFileSchema, programSchema, toConfigIssues, type ProgramSpec } from './config-schema.js';

export type { ProgramSpec } from './config-schema.js';
export type { DpMode } from './config-names.js';
/** DP settings of a program. */
export type ProgramDp = ProgramSpec['dp'];

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Validate one program object; `baseDir` resolves relative paths. Throws a {@link ConfigError}
 * (a RangeError) whose message names the program and each field at fault:
 * `program "p": training.steps must be a positive integer, got 0`.
 */
export function programSpec(raw: unknown, baseDir = process.cwd()): ProgramSpec {
  const r = programSchema(baseDir).safeParse(raw);
  if (r.success) return r.data;
  const id = isRecord(raw) && typeof raw.id === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(raw.id) ? raw.id : undefined;
  throw new ConfigError(toConfigIssues(r.error.issues).map((i) => issueSentence(i, 'program', id === undefined ? 'program.' : `program "${id}": `)));
}

/** A config file's outcome: the programs when valid, else every problem as one sentence naming its path. */
export type ConfigCheck = { readonly ok: true; readonly programs: ProgramSpec[] } | { readonly ok: false; readonly issues: string[] };

/**
 * Validate a coordinator config file without throwing: `{ "programs": [ … ] }` (paths like
 * `programs[0].training.steps`) or one program object (paths like `training.steps`).
 */
export function checkProgramsFile(path: string): ConfigCheck {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return { ok: false, issues: [`cannot read config ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`] };
  }
  const dir = dirname(resolve(path));
  // a single program has an id; anything else is read as the file form (so {"program": …} hears of "programs")
  const single = isRecord(raw) && !('programs' in raw) && 'id' in raw;
  if (single) {
    const r = programSchema(dir).safeParse(raw);
    return r.success ? { ok: true, programs: [r.data] } : { ok: false, issues: sentences(toConfigIssues(r.error.issues), path) };
  }
  const r = configFileSchema(dir).safeParse(raw);
  return r.success ? { ok: true, programs: r.data.programs } : { ok: false, issues: sentences(toConfigIssues(r.error.issues), path) };
}

function sentences(issues: readonly ConfigIssue[], path: string): string[] {
  return issues.map((i) => issueSentence(i, `config ${path}`));
}

/** Read a coordinator config file: `{ "programs": [ … ] }` or one program object. Throws a {@link ConfigError} listing every problem. */
export function readProgramsFile(path: string): ProgramSpec[] {
  const c = checkProgramsFile(path);
  if (!c.ok) throw new ConfigError(c.issues);
  return c.programs;
}
