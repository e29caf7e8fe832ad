/**
 * The dashboard and admin HTTP API attacked over raw sockets, as an outsider would: path
 * traversal in every spelling, tokens that are missing, empty, short, non-ASCII, in a cookie or
 * the query (CSRF needs a header, which a cross-site form or image cannot send), preflights,
 * wrong methods, admin actions in odd orders, HEAD on the event stream, and piles of idle
 * connections. Each gets the fitting HTTP status with a sentence and changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard, type RunningDashboard } from '../../../server/dashboard/http.js';
import { startCoordinator, type RunningCoordinator } from '../../../server/index.js';
import { smallProgram } from '../fixtures.js';

const TOKEN = 'a1b2c3d4e5f6a7b8c9d0';
const AUTH = `Authorization: Bearer ${TOKEN}\r\n`;

interface Reply {
  readonly status: number;
  readonly headers: string;
  readonly body: string;
}

describe('dashboard HTTP: outside attacks over raw sockets', function () {
  this.timeout(20_000);
  let running: RunningCoordinator;
  let dash: RunningDashboard;
  const audit: Record<string, unknown>[] = [];

  before(async () => {
    running = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'fedtune-dash-attack-')), port: 0, programs: [smallProgram('p1', { rounds: 1 }), smallProgram('p2', { rounds: 1 })] });
    dash = await startDashboard({ coordinator: running.coordinator, adminToken: TOKEN, maxClients: 2, maxConnections: 12, log: (_m, f) => audit.push(f ?? {}) });
  });
  after(async () => {
    await dash?.close();
    await running?.shutdown(500);
  });

  /** Send raw request bytes; the reply once the server closes (Connection: close) or after `waitMs`. */
  const raw = (request: string, waitMs = 2000): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const s = net.connect(dash.port, '127.0.0.1');
      let out = '';
      const done = (): void => {
        s.destroy();
        const [head, ...rest] = out.split('\r\n\r\n');
        resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head.toLowerCase(), body: rest.join('\r\n\r\n') });
      };
      const timer = setTimeout(done, waitMs);
      s.on('data', (d) => (out += d.toString('latin1')));
      s.on('end', () => (clearTimeout(timer), done()));
      s.on('error', reject);
      s.write(request);
    });
  const req = (path: string, method = 'GET', headers = ''): Promise<Reply> => raw(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`);
  const errorOf = (r: Reply): string => (JSON.parse(r.body) as { error: string }).error;
  const state = (id: string): string => running.coordinator.program(id).runner.status().state;

  it('path traversal in every spelling reaches only the three page assets', async () => {
    for (const path of ['/../../etc/passwd', '/%2e%2e/%2e%2e/etc/passwd', '/%2E%2E%2Fetc%2Fpasswd', '//etc/passwd', '/..\\..\\etc\\passwd', 'http://evil/etc/passwd', '/app.js%00.png', '/app.js/../../etc/passwd']) {
      const r = await req(path);
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      assert.doesNotMatch(r.body, /root:/, path);
      assert.ok(errorOf(r).length > 10, path);
    }
    assert.equal((await raw('GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n')).status, 400, 'a raw NUL in the request line');
    const page = await req('/');
    assert.equal(page.status, 200);
    // the CSP forbids inline script, other origins, framing and form posts
    assert.match(page.headers, /content-security-policy: default-src 'none'; script-src 'self';.*frame-ancestors 'none'/);
    assert.doesNotMatch(page.body, /<script>|\son[a-z]+=/i, 'no inline script or handler in the page');
  });

  it('admin without the exact bearer token is 401, audited, and changes nothing (no cookie or query token: no CSRF)', async () => {
    const tries: [string, string][] = [
      ['/api/admin/programs/p1/pause', ''],
      ['/api/admin/programs/p1/pause', 'Authorization: Bearer \r\n'],
      ['/api/admin/programs/p1/pause', 'Authorization: Bearer a1b2\r\n'],
      ['/api/admin/programs/p1/pause', `Authorization: Bearer ${TOKEN}x\r\n`],
      ['/api/admin/programs/p1/pause', `Authorization: Bearer ${TOKEN.replace('a', '\u00e1')}\r\n`],
      ['/api/admin/programs/p1/pause', `Authorization: Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}\r\n`],
      ['/api/admin/programs/p1/pause', `Cookie: token=${TOKEN}\r\n`],
      [`/api/admin/programs/p1/pause?token=${TOKEN}`, ''],
    ];
    for (const [path, h] of tries) {
      const r = await req(path, 'POST', h);
      assert.equal(r.status, 401, `${path} ${JSON.stringify(h)}`);
      assert.match(errorOf(r), /admin token/);
    }
    assert.equal(state('p1'), 'running');
    assert.equal(audit.filter((f) => f.outcome === 'refused').length, tries.length);
    const pre = await req('/api/admin/programs/p1/pause', 'OPTIONS', 'Origin: http://evil.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization\r\n');
    assert.equal(pre.status, 405);
    assert.doesNotMatch(pre.headers, /access-control-allow/, 'no CORS grant: a cross-site page cannot send the header');
  });

  it('wrong methods, unknown routes, bad encodings and bodies get 405 / 404 / 400 with a sentence', async () => {
    assert.equal((await req('/api/admin/programs/p1/pause', 'GET', AUTH)).status, 405);
    assert.equal((await req('/api/admin/programs/p1/explode', 'POST', AUTH)).status, 404);
    assert.equal((await req('/api/admin/programs/%E0%A4%A', 'GET', AUTH)).status, 400);
    assert.equal((await req('/api/state', 'POST')).status, 405);
    assert.equal((await req('/', 'DELETE')).status, 405);
    const body = await raw(`POST /api/admin/programs/nope/pause HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{bad}`);
    assert.equal(body.status, 404);
    assert.match(errorOf(body), /no program "nope"/);
  });

  it('revoking unknown devices, pausing twice, stop then pause or resume: fitting statuses, state unchanged by the refused ones', async () => {
    assert.equal((await req('/api/admin/programs/p2/devices/dev-nobody/revoke', 'POST', AUTH)).status, 404);
    assert.equal((await req('/api/admin/programs/zz/devices/dev-nobody/revoke', 'POST', AUTH)).status, 404);
    assert.equal((await req('/api/admin/programs/p2/pause', 'POST', AUTH)).status, 200);
    assert.equal((await req('/api/admin/programs/p2/pause', 'POST', AUTH)).status, 200, 'pausing twice is idempotent');
    assert.equal(state('p2'), 'paused');
    assert.equal((await req('/api/admin/programs/p2/stop', 'POST', AUTH)).status, 200);
    const pause = await req('/api/admin/programs/p2/pause', 'POST', AUTH);
    assert.equal(pause.status, 409);
    assert.match(errorOf(pause), /is stopped; there is nothing to pause/);
    assert.equal((await req('/api/admin/programs/p2/resume', 'POST', AUTH)).status, 409);
    assert.equal(state('p2'), 'stopped');
  });

  it('HEAD on the event stream answers at once and takes no live slot', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await raw('HEAD /api/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 1500);
      assert.equal(r.status, 200, `HEAD ${i} is answered`);
      assert.match(r.headers, /content-type: text\/event-stream/);
    }
    const live = await raw('GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n', 400);
    assert.equal(live.status, 200, 'the live slots are still free');
    assert.match(live.body, /event: snapshot/);
  });

  it('idle and slow connections cannot pile up past maxConnections; the dashboard still serves afterwards', async () => {
    // wait for the server to end the connections past its cap (an event per socket, no clock)
    let ended = 0;
    let enough: () => void = () => {};
    const capped = new Promise<void>((r) => (enough = r));
    const socks = Array.from({ length: 40 }, () => {
      const s = net.connect(dash.port, '127.0.0.1');
      s.on('error', () => {});
      s.once('close', () => ++ended >= 40 - 12 && enough());
      s.write('GET / HTTP/1.1\r\nHost: x\r\n'); // headers never finished (slowloris)
      return s;
    });
    await capped;
    const closedByServer = socks.filter((s) => s.destroyed || s.readableEnded).length;
    assert.ok(closedByServer >= 40 - 12, `only ${40 - closedByServer} of 40 idle connections may stay open (maxConnections 12)`);
    await Promise.all(socks.map((s) => (s.destroyed ? undefined : new Promise((r) => (s.once('close', r), s.destroy())))));
    // the server frees its slots as it sees the closes: a refused connection just tries again
    let state: Reply | undefined;
    for (let i = 0; i < 200 && state?.status !== 200; i++) state = await req('/api/state').catch(() => undefined);
    assert.equal(state?.status, 200);
  });
});
