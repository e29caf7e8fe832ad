/** `fedtune coordinator` as a real child process (for kill -9 and crash tests): start it, read its JSON log, stop it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** dist/cli/main.js. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'cli', 'main.js');

/** One JSON log line of the coordinator. */
export interface CoordinatorLogLine {
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A running coordinator child. */
export interface CoordinatorProcess {
  readonly child: ChildProcess;
  readonly address: string;
  /** Resolves with the exit code, or 128 + signal number when killed by a signal (SIGKILL: 137). */
  readonly exited: Promise<number>;
  /** True until the process exits. */
  alive(): boolean;
  /** Every log line from now on, and every one so far. */
  onLog(listener: (line: CoordinatorLogLine) => void): void;
  readonly lines: CoordinatorLogLine[];
  /** What the process wrote to stderr. */
  stderr(): string;
}

/**
 * Start `fedtune coordinator --config config --port port --data data` with `options.transport`
 * (default `--insecure`) and `options.args` — or `options.script`, a test entry — ; resolves
 * when it logs "listening".
 */
export function startCoordinatorProcess(config: string, data: string, options: { port?: number; env?: NodeJS.ProcessEnv; transport?: readonly string[]; args?: readonly string[]; script?: string } = {}): Promise<CoordinatorProcess> {
  // `script`: a test entry of its own (configured through `env`) instead of the CLI
  const argv = options.script ? [options.script] : [CLI, 'coordinator', '--config', config, '--port', String(options.port ?? 0), '--data', data, ...(options.transport ?? ['--insecure']), ...(options.args ?? [])];
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let running = true;
  let err = '';
  const lines: CoordinatorLogLine[] = [];
  const listeners: ((l: CoordinatorLogLine) => void)[] = [];
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) => {
      running = false;
      resolve(code ?? 128 + (({ SIGKILL: 9, SIGTERM: 15, SIGABRT: 6, SIGSEGV: 11 } as Record<string, number>)[signal ?? ''] ?? -129));
    }),
  );
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      let line: CoordinatorLogLine;
      try {
        line = JSON.parse(text) as CoordinatorLogLine;
      } catch {
        line = { msg: 'unparsed', text };
      }
      lines.push(line);
      for (const l of listeners) l(line);
      if (line.msg === 'listening') {
        resolve({
          child,
          address: line.address as string,
          exited,
          alive: () => running,
          onLog: (l) => {
            listeners.push(l);
          },
          lines,
          stderr: () => err,
        });
      }
    });
    void exited.then((code) => reject(new Error(`coordinator exited with ${code} before listening: ${err}`)));
  });
}
