/**
 * The coordinator's structured logs: pino, one JSON object per line (ISO time, level as a word),
 * or the short coloured lines of log-pretty.ts when a person watches a terminal. Code that logs
 * takes a {@link LogSink}, `(msg, fields)`, so it stays independent of pino; a sink made here
 * also has `child(bindings)` — a pino child logger — and {@link childLog} uses it, so every line
 * a round writes carries its program and round id.
 */
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import { prettyStream } from './log-pretty.js';

/** Fields of one log line. */
export type LogFields = Record<string, unknown>;

/** Where structured log lines go: a message and its fields; optionally a child with bound fields. */
export interface LogSink {
  (msg: string, fields?: LogFields): void;
  /** A sink whose every line also carries `bindings` (a pino child logger). */
  child?: (bindings: LogFields) => LogSink;
}

/** Levels `--log-level` accepts (pino's, and `silent`). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** A `--log-level` value. */
export type LogLevelName = (typeof LOG_LEVELS)[number];
/** Output formats: `auto` is `pretty` when stdout is a TTY, else `json`. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
/** A `--log-format` value. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * The level of a message the coordinator writes: faults are errors, refusals and failed rounds
 * warnings, everything else info. A `level` field in the line overrides it.
 */
const LEVEL_OF: Readonly<Record<string, Level>> = {
  'uncaught exception (kept serving)': 'error',
  'unhandled rejection (kept serving)': 'error',
  'round step threw': 'error',
  'shutdown failed': 'error',
  'release inbox unreadable': 'error',
  'secure aggregation outcome handler failed': 'error',
  'round failed': 'warn',
  'budget exhausted': 'warn',
  'release refused': 'warn',
  'server evaluation failed': 'warn',
  'plaintext (insecure) transport': 'warn',
};

function levelFor(msg: string, fields: LogFields | undefined): Level {
  const f = fields?.level;
  if (typeof f === 'string' && (LOG_LEVELS as readonly string[]).includes(f) && f !== 'silent') return f as Level;
  return LEVEL_OF[msg] ?? 'info';
}

/**
 * A LogSink writing through a pino logger (children are pino children). A field the logger
 * already binds with the same value (e.g. a round's roundId) is not written twice.
 */
export function pinoSink(logger: Logger): LogSink {
  const bound = logger.bindings() as LogFields;
  const boundKeys = Object.keys(bound);
  const sink: LogSink = (msg, fields) => {
    const level = levelFor(msg, fields);
    if (!logger.isLevelEnabled(level)) return;
    let out: LogFields = fields ?? {};
    if ('level' in out || boundKeys.some((k) => k in out && out[k] === bound[k])) {
      out = Object.fromEntries(Object.entries(out).filter(([k, v]) => k !== 'level' && !(k in bound && bound[k] === v)));
    }
    logger[level](out, msg);
  };
  sink.child = (bindings) => pinoSink(logger.child(bindings));
  return sink;
}

/** `log` with `bindings` added to every line: its pino child when it has one, else a wrapper. Undefined stays undefined. */
export function childLog(log: LogSink | undefined, bindings: LogFields): LogSink | undefined {
  if (!log) return undefined;
  if (typeof log.child === 'function') return log.child(bindings);
  const wrapped: LogSink = (msg, fields) => log(msg, { ...bindings, ...fields });
  wrapped.child = (more) => childLog(wrapped, more) as LogSink;
  return wrapped;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Default 'info'. */
  readonly level?: LogLevelName;
  /** Default 'auto'. */
  readonly format?: LogFormat;
  /** Where lines go. Default process.stdout. */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

/** A pino logger for the coordinator, and the LogSink over it. */
export function createLogger(o: LoggerOptions = {}): { logger: Logger; log: LogSink } {
  const level = o.level ?? 'info';
  const format = o.format ?? 'auto';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new RangeError(`createLogger: level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw new RangeError(`createLogger: format must be one of ${LOG_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
  const out = o.stream ?? process.stdout;
  const pretty = format === 'pretty' || (format === 'auto' && out.isTTY === true);
  // through the stream's write (process.stdout: synchronous for files and pipes on Linux), so lines
  // keep their order with anything else written to it
  const destination: DestinationStream = pretty ? prettyStream(out, { colors: out.isTTY === true }) : { write: (s: string) => void out.write(s) };
  const logger = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return { logger, log: pinoSink(logger) };
}
