/**
 * `fedtune admin`: operate a running coordinator through its admin API (on the dashboard port,
 * server/dashboard/http.ts): list programs, pause / resume / stop one, list its devices, revoke a
 * device, list its rounds. Authenticated with the admin token; every action is audited in the
 * coordinator's log under the actor this command names (user@host).
 */
import { readFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import type { AdminDevice, AdminProgram, AdminRound } from '../server/admin.js';
import { CliError } from './args.js';

/** Usage text. */
export const ADMIN_USAGE = `fedtune admin --coordinator H:P (its --http-port) [--token T | --token-file F | env FEDTUNE_ADMIN_TOKEN] [--json]
              programs list | program pause|resume|stop ID | devices list ID | device revoke ID DEV | rounds ID`;

interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly print: (body: unknown) => string;
}

const iso = (ms: number | undefined): string => (ms ? new Date(ms).toISOString() : '-');
const n = (x: number | null | undefined, d = 3): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));

/** Columns padded to their widest cell. */
function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ')).join('\n');
}

function programLine(p: AdminProgram): string[] {
  return [p.id, p.status.state, `${p.roundsCompleted}/${p.roundsTotal}`, `v${p.adapterVersion}`, p.dpMode === 'none' ? '-' : `${n(p.epsilonSpent)}${p.epsilonBudget === null ? '' : `/${n(p.epsilonBudget, 2)}`}`, `${p.devicesEnrolled}/${p.devicesActive}/${p.devicesRevoked}`, p.status.reason];
}
const PROGRAM_HEAD = ['PROGRAM', 'STATE', 'ROUNDS', 'VERSION', 'EPSILON', 'DEVICES(enrolled/active/revoked)', 'WHY'];

const enc = encodeURIComponent;

/** The route of a subcommand; CliError for anything else. */
function routeOf(words: string[]): Route {
  const [a, b, c, d] = words;
  const need = (k: number, usage: string): void => {
    if (words.length !== k) throw new CliError(`usage: fedtune admin … ${usage}`);
  };
  if (a === 'programs' && b === 'list') {
    need(2, 'programs list');
    return { method: 'GET', path: 'programs', print: (x) => table(PROGRAM_HEAD, (x as AdminProgram[]).map(programLine)) };
  }
  if (a === 'program' && (b === 'pause' || b === 'resume' || b === 'stop')) {
    need(3, `program ${b} ID`);
    return { method: 'POST', path: `programs/${enc(c)}/${b}`, print: (x) => table(PROGRAM_HEAD, [programLine(x as AdminProgram)]) };
  }
  if (a === 'devices' && b === 'list') {
    need(3, 'devices list ID');
    return {
      method: 'GET',
      path: `programs/${enc(c)}/devices`,
      print: (x) => table(['DEVICE', 'STATUS', 'ENROLLED', 'LAST SEEN', 'LABEL'], (x as AdminDevice[]).map((v) => [v.id, v.revoked ? `revoked by ${v.revokedBy}` : v.active ? 'active' : 'idle', iso(v.enrolledMs), iso(v.lastSeenMs), v.label])),
    };
  }
  if (a === 'device' && b === 'revoke') {
    need(4, 'device revoke ID DEV');
    return { method: 'POST', path: `programs/${enc(c)}/devices/${enc(d)}/revoke`, print: (x) => `${(x as { deviceId: string }).deviceId} ${(x as { already: boolean }).already ? 'was already revoked' : 'revoked'}` };
  }
  if (a === 'rounds') {
    need(2, 'rounds ID');
    return {
      method: 'GET',
      path: `programs/${enc(b)}/rounds`,
      print: (x) =>
        table(
          ['ROUND', 'STATE', 'SELECTED', 'UPDATES', 'FAILED', 'DURATION', 'EPSILON', 'VERSION', 'MESSAGE'],
          (x as AdminRound[]).map((r) => [`${r.roundNumber}.${r.attempt}`, r.state, String(r.selected), String(r.updates), String(r.failed), `${(r.durationMs / 1000).toFixed(1)}s`, n(r.epsilonSpent), `v${r.adapterVersion}`, r.message]),
        ),
    };
  }
  throw new CliError(`unknown admin command "${words.join(' ')}"; one of: programs list | program pause|resume|stop ID | devices list ID | device revoke ID DEV | rounds ID`);
}

/** The admin API's base URL from --coordinator ("host:port", or an http(s):// URL behind a proxy). */
export function adminBaseUrl(coordinator: string): string {
  if (/^https?:\/\//.test(coordinator)) return coordinator.endsWith('/') ? coordinator : `${coordinator}/`;
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(coordinator)) throw new CliError(`--coordinator must be host:port (the coordinator's --http-port) or an http(s):// URL, got "${coordinator}"`);
  return `http://${coordinator}/`;
}

/** Run the command. */
export async function adminCommand(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { coordinator: { type: 'string' }, token: { type: 'string' }, 'token-file': { type: 'string' }, json: { type: 'boolean' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new CliError((e as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  const v = parsed.values;
  if (!v.coordinator) throw new CliError('--coordinator is required (host:port of the coordinator\'s --http-port)');
  if (v.token !== undefined && v['token-file'] !== undefined) throw new CliError('give the admin token once: --token or --token-file');
  let token = v.token ?? process.env.FEDTUNE_ADMIN_TOKEN;
  if (v['token-file'] !== undefined) {
    try {
      token = readFileSync(v['token-file'], 'utf8').trim();
    } catch (e) {
      throw new CliError(`--token-file: cannot read ${v['token-file']}: ${(e as Error).message}`);
    }
  }
  if (!token) throw new CliError('the admin token is required: --token, --token-file or FEDTUNE_ADMIN_TOKEN');
  const route = routeOf(parsed.positionals);
  const url = new URL(`api/admin/${route.path}`, adminBaseUrl(v.coordinator)).toString();
  let actor = 'fedtune-admin';
  try {
    actor = `${userInfo().username}@${hostname()}`;
  } catch {
    // no user name (a container without a passwd entry): the generic actor
  }
  let res: Response;
  try {
    res = await fetch(url, { method: route.method, headers: { authorization: `Bearer ${token}`, 'x-fedtune-actor': actor }, signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`cannot reach the admin API at ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`the admin API at ${url} answered HTTP ${res.status} with something other than JSON`);
  }
  if (!res.ok) throw new Error(`${(body as { error?: string }).error ?? `HTTP ${res.status}`} (HTTP ${res.status})`);
  process.stdout.write(`${v.json ? JSON.stringify(body, null, 2) : route.print(body)}\n`);
}
