/**
 * `fedtune coordinator`: run the coordinator as a service, with pino logs (server/log.ts), optional
 * Prometheus metrics (server/metrics.ts), a graceful
 * draining shutdown, and process-level fault handlers (see fault-guard.ts for what is kept alive).
 */
import { readProgramsFile, startCoordinator } from '../server/index.js';
import { CoordinatorMetrics, serveMetrics, type MetricsServer } from '../server/metrics.js';
import { createLogger, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevelName } from '../server/log.js';
import { CliError, num, oneOf, parse, required } from './args.js';
import { installFaultGuard } from './fault-guard.js';
import { DASHBOARD_FLAGS, DASHBOARD_USAGE, dashboardFromFlags } from './dashboard.js';
import { COORDINATOR_TLS_FLAGS, COORDINATOR_TLS_USAGE, coordinatorCredentials } from './transport.js';

/** Usage text. */
export const COORDINATOR_USAGE = `fedtune coordinator --config FILE [--port P (default 7070; 0 = any)] [--host H (default 127.0.0.1)]
              ${COORDINATOR_TLS_USAGE}
              [--data DIR (default ./fedtune-data)] [--store PATH|postgres://… (default DIR/coordinator.sqlite)] [--blobs dir|postgres (default dir)]
              [--replica-id NAME] [--lease-ms MS (PostgreSQL: a program's lease, default 15000)]
              [--exit-when-done] [--drain-ms MS (default 0)]
              [--metrics-port P (Prometheus /metrics; off by default)] [--log-level L (default info)] [--log-format auto|json|pretty]
              ${DASHBOARD_USAGE}`;

/** Run the command until SIGTERM/SIGINT (or, with --exit-when-done, until every program completes). */
export async function coordinatorCommand(argv: string[]): Promise<void> {
  const v = parse(argv, { config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, data: { type: 'string' }, store: { type: 'string' }, blobs: { type: 'string' }, 'replica-id': { type: 'string' }, 'lease-ms': { type: 'string' }, 'exit-when-done': { type: 'boolean' }, 'drain-ms': { type: 'string' }, 'metrics-port': { type: 'string' }, 'log-level': { type: 'string' }, 'log-format': { type: 'string' }, ...COORDINATOR_TLS_FLAGS, ...DASHBOARD_FLAGS });
  const { log: log } = createLogger({ level: oneOf<LogLevelName>(v, 'log-level', LOG_LEVELS, 'info'), format: oneOf<LogFormat>(v, 'log-format', LOG_FORMATS, 'auto') });
  const metricsPort = num(v, 'metrics-port', { integer: true, min: 0, max: 65535 });
  const configPath = required(v, 'config');
  const port = num(v, 'port', { integer: true, min: 0, max: 65535 }) ?? 7070;
  const drainMs = num(v, 'drain-ms', { integer: true, min: 0, max: 600_000 }) ?? 0;
  let programs;
  try {
    programs = readProgramsFile(configPath);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  const host = (v.host as string | undefined) ?? '127.0.0.1';
  const store = v.store as string | undefined;
  if (store === '') throw new CliError('--store must be a SQLite file path or a postgres:// URL');
  const blobs = oneOf<'dir' | 'postgres'>(v, 'blobs', ['dir', 'postgres'], 'dir');
  const leaseTtlMs = num(v, 'lease-ms', { integer: true, min: 300, max: 600_000 });
  const replicaId = v['replica-id'] as string | undefined;
  if (replicaId === '') throw new CliError('--replica-id must not be empty');
  if (blobs === 'postgres' && !(store && /^postgres(ql)?:\/\//.test(store))) throw new CliError('--blobs postgres needs --store postgres://…');
  const credentials = coordinatorCredentials(v, log); // TLS, or plaintext only with --insecure
  const metrics = metricsPort === undefined ? undefined : new CoordinatorMetrics();
  const running = await startCoordinator({ credentials, programs, port, host, dataDir: (v.data as string | undefined) ?? 'fedtune-data', store, blobs, replicaId, leaseTtlMs, log: log, drainMs, metrics });
  let metricsServer: MetricsServer | undefined;
  let dashboard;
  try {
    if (metrics) metricsServer = await serveMetrics(metrics, { host, port: metricsPort });
    dashboard = await dashboardFromFlags(v, running.coordinator, log);
  } catch (e) {
    await metricsServer?.close();
    await running.shutdown(0);
    throw e instanceof CliError ? e : new CliError((e as Error).message);
  }
  let storm = 0;
  let stop: (why: string) => void = () => {};
  const uninstall = installFaultGuard({
    log: log,
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
      log('shutting down', { signal });
      Promise.all([dashboard?.close(), running.shutdown(5000).then(() => metricsServer?.close())]).then(() => resolve(), (e: unknown) => {
        log('shutdown failed', { error: e instanceof Error ? e.message : String(e) });
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // announced only once the signal handlers are in place: a supervisor may signal right away
    log('listening', { address: running.address, port: running.port, programs: programs.map((p) => p.id), ...(metricsServer ? { metrics: `http://${metricsServer.address}/metrics`, metricsPort: metricsServer.port } : {}) });
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
  log('stopped');
  if (storm > 0) throw new Error(`stopped after ${storm} uncaught faults within a minute; restart it to resume from the store`);
}
