/**
 * The dashboard's HTTP server (`fedtune coordinator --http-port`): the web app (page.ts, no
 * external resources), its data (`GET /api/state`), live updates as Server-Sent Events
 * (`GET /api/events`), and the admin JSON API under `/api/admin/` (token required; see
 * server/admin.ts and the README's "Dashboard and admin"):
 *
 *   GET  /api/admin/programs                              programs list
 *   POST /api/admin/programs/ID/pause | resume | stop     program pause|resume|stop ID
 *   GET  /api/admin/programs/ID/devices                   devices list ID
 *   POST /api/admin/programs/ID/devices/DEV/revoke        device revoke ID DEV
 *   GET  /api/admin/programs/ID/rounds                    rounds ID
 *
 * Admin requests carry `Authorization: Bearer TOKEN` and may name their actor in
 * `X-Fedtune-Actor` (for the audit log). Errors answer `{"error": sentence}` with a fitting status.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Subscription } from 'rxjs';
import { Admin, type AdminActor } from '../admin.js';
import type { Coordinator } from '../coordinator.js';
import { CoordinatorError, type FailureKind } from '../errors.js';
import { DashboardFeed } from './feed.js';
import { PAGE_ASSETS } from './page.js';

/** Options of {@link startDashboard}. */
export interface DashboardOptions {
  readonly coordinator: Coordinator;
  /** Port; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Host to bind. Default "127.0.0.1" (put a reverse proxy with TLS in front to expose it). */
  readonly host?: string;
  /** Admin token (≥ 16 characters); without one the dashboard is read-only and the admin API refuses. */
  readonly adminToken?: string;
  /** Structured log sink (admin actions are audited there). */
  readonly log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** How often device counts are refreshed, ms. Default 2000. */
  readonly refreshMs?: number;
  /** Live-update connections served at once; more get 503. Default 100. */
  readonly maxClients?: number;
  /** Open connections of any kind at once (idle and slow ones included); more are closed on accept. Default maxClients + 64. */
  readonly maxConnections?: number;
}

/** A running dashboard. */
export interface RunningDashboard {
  readonly port: number;
  /** "http://host:port/". */
  readonly url: string;
  readonly admin: Admin;
  readonly feed: DashboardFeed;
  /** Stop serving (open event streams end). Idempotent. */
  close(): Promise<void>;
}

const HTTP_STATUS: Readonly<Record<FailureKind, number>> = {
  'invalid-argument': 400,
  unauthenticated: 401,
  'permission-denied': 403,
  'not-found': 404,
  'already-exists': 409,
  'failed-precondition': 409,
  'deadline-exceeded': 504,
  'resource-exhausted': 429,
  'out-of-range': 400,
  unavailable: 503,
  internal: 500,
};

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

function send(res: ServerResponse, status: number, body: string, type: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8');
}

/** The actor a request names (printable, at most 100 characters) and its address. */
function actorOf(req: IncomingMessage): AdminActor {
  const raw = req.headers['x-fedtune-actor'];
  const name = (typeof raw === 'string' ? raw : '').replace(/[^\x20-\x7e]/g, '').slice(0, 100).trim();
  return { name: name || 'unnamed', address: `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}` };
}

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  return m ? m[1] : undefined;
}

/** Start the dashboard's HTTP server beside a coordinator. */
export async function startDashboard(o: DashboardOptions): Promise<RunningDashboard> {
  if (!o || typeof o.coordinator !== 'object' || o.coordinator === null) throw new TypeError('startDashboard: options.coordinator must be a Coordinator');
  const port = o.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`startDashboard: options.port must be an integer in 0..65535, got ${port}`);
  const maxClients = o.maxClients ?? 100;
  if (!Number.isInteger(maxClients) || maxClients < 1) throw new RangeError(`startDashboard: options.maxClients must be a positive integer, got ${maxClients}`);
  const maxConnections = o.maxConnections ?? maxClients + 64;
  if (!Number.isInteger(maxConnections) || maxConnections <= maxClients) throw new RangeError(`startDashboard: options.maxConnections must be an integer above maxClients (${maxClients}), got ${maxConnections}`);
  const log = o.log ?? (() => {});
  const admin = new Admin(o.coordinator, o.adminToken, log);
  const feed = await DashboardFeed.open(o.coordinator, admin, o.refreshMs);
  const streams = new Set<{ res: ServerResponse; sub: Subscription; beat: NodeJS.Timeout }>();

  const events = (req: IncomingMessage, res: ServerResponse): void => {
    if (streams.size >= maxClients) return json(res, 503, { error: `the dashboard already serves ${maxClients} live connections; retry later` });
    // HEAD gets the stream's headers only: no body would ever be sent, so it takes no live slot
    if (req.method === 'HEAD') return send(res, 200, '', 'text/event-stream; charset=utf-8');
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(feed.snapshot())}\n\n`);
    const sub = feed.updates$.subscribe({
      next: (u) => res.write(`event: ${u.type}\ndata: ${JSON.stringify(u)}\n\n`),
      complete: () => res.end(),
    });
    // a comment now and then keeps proxies from closing an idle stream
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const entry = { res, sub, beat };
    streams.add(entry);
    req.on('close', () => {
      sub.unsubscribe();
      clearInterval(beat);
      streams.delete(entry);
    });
  };

  const adminRoute = async (req: IncomingMessage, res: ServerResponse, parts: string[]): Promise<void> => {
    // parts: ['programs', ID?, ('pause'|'resume'|'stop'|'devices'|'rounds')?, DEV?, 'revoke'?]
    const method = req.method ?? 'GET';
    const actor = actorOf(req);
    const [root, id, what, dev, verb] = parts;
    const route = root !== 'programs' ? undefined : id === undefined ? 'programs list' : what === 'devices' && dev !== undefined && verb === 'revoke' && parts.length === 5 ? 'device revoke' : parts.length === 3 ? ({ pause: 'program pause', resume: 'program resume', stop: 'program stop', devices: 'devices list', rounds: 'rounds' } as Record<string, string>)[what] : undefined;
    if (!route) return json(res, 404, { error: `no admin route ${req.url ?? ''}; see \`fedtune admin --help\`` });
    const wantPost = route === 'device revoke' || route.startsWith('program ');
    if ((wantPost ? 'POST' : 'GET') !== method) return json(res, 405, { error: `${route} takes ${wantPost ? 'POST' : 'GET'}, not ${method}` });
    admin.authorize(bearer(req), actor, route);
    let out: unknown;
    if (route === 'programs list') out = await admin.programs();
    else if (route === 'program pause') out = await admin.pause(id, actor);
    else if (route === 'program resume') out = await admin.resume(id, actor);
    else if (route === 'program stop') out = await admin.stop(id, actor);
    else if (route === 'devices list') out = await admin.devices(id);
    else if (route === 'device revoke') out = await admin.revoke(id, dev, actor);
    else out = await admin.rounds(id);
    if (wantPost) await feed.refreshPrograms();
    else admin.audit(actor, route, 'ok', id === undefined ? {} : { program: id });
    json(res, 200, out);
  };

  const failed = (req: IncomingMessage, res: ServerResponse, e: unknown): void => {
    if (e instanceof CoordinatorError) return json(res, HTTP_STATUS[e.kind], { error: e.message });
    if (e instanceof URIError) return json(res, 400, { error: 'the path is not valid percent-encoding' });
    log('dashboard request failed', { path: req.url, error: (e as Error).message });
    if (!res.headersSent) json(res, 500, { error: 'the dashboard failed to answer; see the coordinator log' });
    else res.end();
  };

  const server: Server = createServer((req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://dashboard');
      const path = url.pathname;
      if (path.startsWith('/api/admin/')) {
        const parts = path.slice('/api/admin/'.length).split('/').map((x) => decodeURIComponent(x));
        adminRoute(req, res, parts).catch((e: unknown) => failed(req, res, e));
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: `${path} is read-only (GET)` });
      if (path === '/api/state') return json(res, 200, feed.snapshot());
      if (path === '/api/events') return events(req, res);
      const asset = PAGE_ASSETS[path === '/' ? '/index.html' : path];
      if (asset) return send(res, 200, asset.body, asset.type);
      json(res, 404, { error: `nothing at ${path}` });
    } catch (e) {
      failed(req, res, e);
    }
  });
  server.maxConnections = maxConnections; // slow or idle sockets cannot pile up past this
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  const host = o.host ?? '127.0.0.1';
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    feed.close();
    throw new Error(`the dashboard cannot listen on ${host}:${port}: ${(e as Error).message}`);
  }
  const bound = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    port: bound,
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/`,
    admin,
    feed,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        for (const s of streams) {
          s.sub.unsubscribe();
          clearInterval(s.beat);
          s.res.end();
        }
        streams.clear();
        feed.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
