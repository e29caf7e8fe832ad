/**
 * The dashboard and admin flags of `fedtune coordinator` (--http-port, --http-host,
 * --admin-token-file, --admin-token; env FEDTUNE_ADMIN_TOKEN), and starting the dashboard from them.
 */
import { readFileSync } from 'node:fs';
import { checkAdminToken } from '../server/admin.js';
import type { Coordinator } from '../server/coordinator.js';
import { startDashboard, type RunningDashboard } from '../server/dashboard/http.js';
import { CliError, num } from './args.js';

/** The flags, for node:util parseArgs. */
export const DASHBOARD_FLAGS = {
  'http-port': { type: 'string' },
  'http-host': { type: 'string' },
  'admin-token': { type: 'string' },
  'admin-token-file': { type: 'string' },
} as const;

/** Their usage lines. */
export const DASHBOARD_USAGE = `[--http-port P (dashboard + admin API; 0 = any)] [--http-host H (default 127.0.0.1)]
              [--admin-token-file F | --admin-token T | env FEDTUNE_ADMIN_TOKEN]`;

/** The admin token from the flags or the environment (undefined: admin disabled); CliError if malformed. */
export function adminTokenFrom(v: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const given = [v['admin-token-file'] !== undefined && '--admin-token-file', v['admin-token'] !== undefined && '--admin-token'].filter(Boolean);
  if (given.length > 1) throw new CliError('give the admin token once: --admin-token-file or --admin-token');
  let token: string | undefined;
  let source = 'FEDTUNE_ADMIN_TOKEN';
  if (typeof v['admin-token-file'] === 'string') {
    source = `the admin token in ${v['admin-token-file']}`;
    try {
      token = readFileSync(v['admin-token-file'], 'utf8').trim();
    } catch (e) {
      throw new CliError(`--admin-token-file: cannot read ${v['admin-token-file']}: ${(e as Error).message}`);
    }
  } else if (typeof v['admin-token'] === 'string') {
    source = '--admin-token';
    token = v['admin-token'];
  } else if (env.FEDTUNE_ADMIN_TOKEN) token = env.FEDTUNE_ADMIN_TOKEN;
  if (token === undefined) return undefined;
  try {
    return checkAdminToken(token, source);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
}

/** Start the dashboard when --http-port is given (logging where it listens), else nothing. */
export async function dashboardFromFlags(v: Record<string, string | boolean | undefined>, coordinator: Coordinator, log: (msg: string, fields?: Record<string, unknown>) => void): Promise<RunningDashboard | undefined> {
  const port = num(v, 'http-port', { integer: true, min: 0, max: 65535 });
  const adminToken = adminTokenFrom(v);
  if (port === undefined) {
    if (adminToken !== undefined || v['http-host'] !== undefined) throw new CliError('--http-host and the admin token need --http-port (the dashboard and admin API listen there)');
    return undefined;
  }
  const d = await startDashboard({ coordinator, port, host: (v['http-host'] as string | undefined) ?? '127.0.0.1', adminToken, log });
  log('dashboard listening', { url: d.url, port: d.port, admin: adminToken !== undefined });
  return d;
}
