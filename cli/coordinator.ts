/**
 * `fedtune coordinator`: run the coordinator as a service, with JSON-line logs, a graceful
 * draining shutdown, and process-level fault handlers (see fault-guard.ts for what is kept alive).
 */
import { readProgramsFile, startCoordinator } from '../server/index.js';
import { CliError, num, parse, required } from './args.js';
import { installFaultGuard } from './fault-guard.js';
import { DASHBOARD_FLAGS, DASHBOARD_USAGE, dashboardFromFlags } from './dashboard.js';
import { COORDINATOR_TLS_FLAGS, COORDINATOR_TLS_USAGE, coordinatorCredentials } from './transport.js';

/** Usage text. */
export const COORDINATOR_USAGE = `fedtune coordinator --config FILE [--port P (default 7070; 0 = any)] [--host H (default 127.0.0.1)]
              ${COORDINATOR_TLS_USAGE}
              [--data DIR (default ./fedtune-data)] [--exit-when-done] [--drain-ms MS (default 0)]
              ${DASHBOARD_USAGE}`;

/** One structured log line on stdout. */
export function jsonLog(msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...fields })}\n`);
}

/** Run the command until SIGTERM/SIGINT (or, with --exit-when-done, until every program completes). */
export async function coordinatorCommand(argv: string[]): Promise<void> {
  const v = parse(argv, { config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, data: { type: 'string' }, 'exit-when-done': { type: 'boolean' }, 'drain-ms': { type: 'string' }, ...COORDINATOR_TLS_FLAGS, ...DASHBOARD_FLAGS });
  const configPath = required(v, 'config');
  const port = num(v, 'port', { integer: true, min: 0, max: 65535 }) ?? 7070;
  const drainMs = num(v, 'drain-ms', { integer: true, min: 0, max: 600_000 }) ?? 0;
  let programs;
  try {
    programs = readProgramsFile(configPath);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const credentials = coordinatorCredentials(v, jsonLog); // TLS, or plaintext only with --insecure
  const running = await startCoordinator({ credentials, programs, port, host: (v.host as string | undefined) ?? '127.0.0.1', dataDir: (v.data as string | undefined) ?? 'fedtune-data', log: jsonLog, drainMs });
  let dashboard;
  try {
    dashboard = await dashboardFromFlags(v, running.coordinator, jsonLog);
  } catch (e) {
    await running.shutdown(1000);
    throw e;
  }
  let storm = 0;
  let stop: (why: string) => void = () => {};
  const uninstall = installFaultGuard({
    log: jsonLog,
    onStorm: (faults) => {
      storm = faults;
      stop('repeated faults');
    },
  });
  await new Promise<void>((resolve) => {
    let stopping = false;
    stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      jsonLog('shutting down', { signal });
      Promise.all([dashboard?.close(), running.shutdown(5000)]).then(() => resolve(), (e: unknown) => {
        jsonLog('shutdown failed', { error: e instanceof Error ? e.message : String(e) });
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // announced only once the signal handlers are in place: a supervisor may signal right away
    jsonLog('listening', { address: running.address, port: running.port, programs: programs.map((p) => p.id) });
    if (v['exit-when-done']) {
      let left = programs.length;
      for (const p of programs) {
        running.coordinator.program(p.id).runner.watch(Number.MAX_SAFE_INTEGER).subscribe({
          complete: () => {
            if (--left === 0 && programs.every((q) => running.coordinator.program(q.id).runner.done)) stop('all programs complete');
          },
        });
      }
    }
  });
  uninstall();
  jsonLog('stopped');
  if (storm > 0) throw new Error(`stopped after ${storm} uncaught faults within a minute; restart it to resume from the store`);
}
