/**
 * A small pretty printer for the coordinator's JSON log lines (pino-pretty is not a dependency):
 * `12:04:05.123 INFO  round completed program=oz round=3 roundId=oz.r3.a1 …`, coloured by level
 * when the output is a terminal. Lines that are not JSON pass through unchanged.
 */

const COLOURS: Readonly<Record<string, string>> = { fatal: '\x1b[35m', error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[32m', debug: '\x1b[36m', trace: '\x1b[90m' };
const RESET = '\x1b[0m';
const DIM = '\x1b[2m';

function valueText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v);
}

/** One JSON log line (as pino writes it) as one human line, newline included. */
export function prettyLine(line: string, options: { readonly colors?: boolean } = {}): string {
  if (typeof line !== 'string') throw new TypeError('prettyLine: line must be a string');
  let o: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return line.endsWith('\n') ? line : `${line}\n`;
    o = parsed as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const { time, level, msg, stack, ...rest } = o;
  const t = typeof time === 'string' ? time.slice(11, 23) : typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : '';
  const lv = String(level ?? 'info');
  const colors = options.colors === true;
  const head = colors ? `${DIM}${t}${RESET} ${COLOURS[lv] ?? ''}${lv.toUpperCase().padEnd(5)}${RESET}` : `${t} ${lv.toUpperCase().padEnd(5)}`;
  const fields = Object.entries(rest).map(([k, v]) => (colors ? `${DIM}${k}=${RESET}${valueText(v)}` : `${k}=${valueText(v)}`));
  const tail = typeof stack === 'string' ? `\n    ${stack.split('\n').join('\n    ')}` : '';
  return `${head} ${String(msg ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}${tail}\n`;
}

/** A pino destination that writes every line to `out` pretty-printed. */
export function prettyStream(out: NodeJS.WritableStream, options: { readonly colors?: boolean } = {}): { write(chunk: string): void } {
  if (!out || typeof out.write !== 'function') throw new TypeError('prettyStream: out must be a writable stream');
  return {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') out.write(prettyLine(line, options));
    },
  };
}
