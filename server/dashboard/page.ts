/**
 * The dashboard web app: one HTML page, its stylesheet and its script, shipped inside the
 * package (no CDN, no build step; vanilla JS, charts drawn as inline SVG). The script loads the
 * snapshot from the `/api/events` stream, applies each `round` and `program` update as it comes,
 * and — once an admin token is entered (kept in the tab's sessionStorage only) — offers pause,
 * resume, stop and revoke through the admin API. It builds the DOM with textContent only, so no
 * value from a device (a label) is ever parsed as HTML. Elements carry data-* attributes that
 * the browser test (test/server/dashboard/) waits on.
 */

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedtune coordinator</title>
<link rel="stylesheet" href="/app.css">
<link rel="icon" href="data:,">
</head>
<body>
<header>
  <h1>fedtune coordinator</h1>
  <span id="conn" class="conn" data-conn="connecting">connecting…</span>
  <form id="admin" class="admin" autocomplete="off">
    <input id="token" type="password" placeholder="admin token" aria-label="admin token" autocomplete="off">
    <button id="unlock" type="submit">unlock admin</button>
    <button id="lock" type="button" hidden>lock</button>
  </form>
</header>
<p id="notice" class="notice" hidden></p>
<main id="programs"><p class="muted">Waiting for the coordinator…</p></main>
<footer class="muted">Live via Server-Sent Events · read-only unless an admin token is entered</footer>
<script src="/app.js" type="module"></script>
</body>
</html>
`;

const APP_CSS = `
:root { --fg: #1d2330; --muted: #6b7385; --line: #dde1ea; --bg: #f6f7fb; --card: #fff; --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #232a3b; color: #fff; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
.conn { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #555; }
.conn[data-conn="live"] { background: var(--ok); }
.conn[data-conn="lost"] { background: var(--bad); }
.admin { margin-left: auto; display: flex; gap: 6px; }
.admin input { padding: 4px 6px; border-radius: 4px; border: 1px solid #667; }
button { font: inherit; padding: 3px 10px; border-radius: 4px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
button.danger { color: var(--bad); border-color: var(--bad); }
main { padding: 16px 20px; display: grid; gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.card h2 { margin: 0 8px 0 0; font-size: 17px; display: inline; }
.badge { display: inline-block; font-size: 12px; padding: 1px 8px; border-radius: 10px; color: #fff; background: var(--muted); vertical-align: 2px; }
.badge.running { background: var(--ok); } .badge.paused, .badge.waiting { background: var(--warn); } .badge.stopped { background: var(--bad); } .badge.completed { background: var(--accent); }
.reason { color: var(--muted); margin-left: 8px; }
.stats { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 10px 0; }
.stat b { display: block; font-size: 18px; }
.stat span { color: var(--muted); font-size: 12px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; margin: 8px 0 12px; }
.chart { border: 1px solid var(--line); border-radius: 6px; background: #fbfcfe; }
.chart .title { font-size: 12px; fill: var(--fg); font-weight: 600; }
.chart .axis { stroke: #aab; stroke-width: 1; }
.chart .tick { font-size: 10px; fill: var(--muted); }
.chart .line { fill: none; stroke-width: 2; }
.chart.loss .line { stroke: #805ad5; } .chart.loss .point { fill: #805ad5; }
.chart.epsilon .line { stroke: #dd6b20; } .chart.epsilon .point { fill: #dd6b20; }
.chart .empty { font-size: 12px; fill: var(--muted); }
h3 { font-size: 13px; margin: 14px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
td.msg { white-space: normal; color: var(--muted); }
th { color: var(--muted); font-weight: 500; }
tr[data-round-state="OPEN"] td, tr[data-round-state="AGGREGATING"] td { background: #fffbea; }
tr[data-round-state="FAILED"] td.state { color: var(--bad); }
tr[data-round-state="COMPLETED"] td.state { color: var(--ok); }
tr.revoked td { color: var(--muted); text-decoration: line-through; }
code { font-size: 12px; }
.notice { margin: 10px 20px 0; padding: 8px 12px; border-radius: 6px; background: #fff5f5; border: 1px solid var(--bad); }
.muted { color: var(--muted); }
footer { padding: 8px 20px 20px; font-size: 12px; }
.actions { display: inline-flex; gap: 6px; margin-left: 12px; vertical-align: 2px; }
`;

// plain JS (no template literals: this file is itself one)
const APP_JS = `
const state = { programs: new Map(), token: sessionStorage.getItem('fedtune-admin-token') || '' };
const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else if (k === 'onclick') el.addEventListener('click', v);
    else el.setAttribute(k, String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = String(text);
  return el;
}
const fmt = (x, d) => (x === null || x === undefined || !Number.isFinite(x)) ? '–' : Number(x).toFixed(d === undefined ? 3 : d);
const ago = (ms) => { if (!ms) return 'never'; const s = Math.max(0, Math.round((Date.now() - ms) / 1000)); return s < 60 ? s + ' s ago' : s < 3600 ? Math.round(s / 60) + ' min ago' : Math.round(s / 3600) + ' h ago'; };
const dur = (r) => { const end = r.closedMs || Date.now(); const s = Math.max(0, (end - r.openedMs) / 1000); return s < 120 ? s.toFixed(1) + ' s' : (s / 60).toFixed(1) + ' min'; };
const time = (ms) => ms ? new Date(ms).toLocaleString() : '–';

function notice(text) { const n = $('notice'); n.textContent = text || ''; n.hidden = !text; }

async function adminCall(path, method) {
  const res = await fetch('/api/admin/' + path, { method: method, headers: { authorization: 'Bearer ' + state.token, 'x-fedtune-actor': 'dashboard' } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { notice((body && body.error) || ('admin request failed: HTTP ' + res.status)); return undefined; }
  notice('');
  return body;
}

function chart(kind, title, points, yDigits, emptyText, fromZero) {
  const W = 380, H = 170, L = 46, R = 12, T = 30, B = 26;
  const svg = s('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, class: 'chart ' + kind, 'data-chart': kind, 'data-points': points.length, role: 'img', 'aria-label': title });
  svg.append(s('text', { x: 8, y: 15, class: 'title' }, title));
  svg.append(s('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }));
  svg.append(s('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
  if (!points.length) { svg.append(s('text', { x: L + 10, y: (H + T - B) / 2, class: 'empty' }, emptyText)); return svg; }
  const xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = fromZero ? Math.min(0, ...ys) : Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-9) { y0 -= 0.5 * (Math.abs(y0) || 1); y1 += 0.5 * (Math.abs(y1) || 1); }
  const px = (x) => x1 === x0 ? (L + W - R) / 2 : L + (x - x0) / (x1 - x0) * (W - R - L);
  const py = (y) => H - B - (y - y0) / (y1 - y0) * (H - B - T);
  svg.append(s('text', { x: L - 4, y: T + 4, class: 'tick', 'text-anchor': 'end' }, fmt(y1, yDigits)));
  svg.append(s('text', { x: L - 4, y: H - B, class: 'tick', 'text-anchor': 'end' }, fmt(y0, yDigits)));
  svg.append(s('text', { x: L, y: H - 8, class: 'tick' }, 'round ' + x0));
  if (x1 !== x0) svg.append(s('text', { x: W - R, y: H - 8, class: 'tick', 'text-anchor': 'end' }, 'round ' + x1));
  svg.append(s('polyline', { class: 'line', points: points.map((p) => px(p.x).toFixed(1) + ',' + py(p.y).toFixed(1)).join(' ') }));
  for (const p of points) {
    const c = s('circle', { class: 'point', cx: px(p.x).toFixed(1), cy: py(p.y).toFixed(1), r: 3.5, 'data-round': p.x, 'data-value': p.y });
    c.append(s('title', {}, 'round ' + p.x + ': ' + fmt(p.y, yDigits)));
    svg.append(c);
  }
  return svg;
}

function stat(value, label) { return h('div', { class: 'stat' }, h('b', { text: value }), h('span', { text: label })); }

function rejectedText(r) {
  const parts = Object.entries(r.rejected || {}).map(([k, n]) => k + ' ×' + n);
  if (!parts.length && r.failed) return r.failed + ' failed';
  return parts.join(', ') || '–';
}

function table(head, rows) {
  return h('table', {}, h('thead', {}, h('tr', {}, head.map((t) => h('th', { text: t })))), h('tbody', {}, rows));
}

function roundsTable(rounds) {
  return table(['round', 'state', 'participants', 'updates', 'not taken', 'duration', 'ε spent', 'held-out loss', 'version', ''],
    rounds.slice(0, 50).map((r) => h('tr', { 'data-round-id': r.roundId, 'data-round-state': r.state },
      h('td', { text: r.roundNumber }), h('td', { class: 'state', text: r.state }), h('td', { text: r.selected }), h('td', { text: r.updates }),
      h('td', { class: 'rejected', text: rejectedText(r) }), h('td', { text: dur(r) }), h('td', { text: fmt(r.epsilonSpent) }), h('td', { text: fmt(r.heldOutLoss) }),
      h('td', { text: 'v' + r.adapterVersion }), h('td', { class: 'msg', text: r.message }))));
}

function devicesTable(p, admin) {
  if (!p.devices.length) return h('p', { class: 'muted', text: 'No device has enrolled yet.' });
  const revoke = (d) => { if (confirm('Revoke device ' + d.id + '?')) adminCall('programs/' + encodeURIComponent(p.id) + '/devices/' + encodeURIComponent(d.id) + '/revoke', 'POST'); };
  return table(['device', 'label', 'enrolled', 'last seen', 'status', ''],
    p.devices.map((d) => h('tr', { 'data-device': d.id, class: d.revoked ? 'revoked' : undefined },
      h('td', {}, h('code', { text: d.id })), h('td', { text: d.label || '–' }), h('td', { text: time(d.enrolledMs) }), h('td', { text: ago(d.lastSeenMs) }),
      h('td', { text: d.revoked ? 'revoked' : d.active ? 'active' : 'idle' }),
      h('td', {}, admin && !d.revoked ? h('button', { class: 'danger', text: 'revoke', 'data-action': 'revoke', onclick: () => revoke(d) }) : null))));
}

function releasesTable(p) {
  return table(['release', 'kind', 'version', 'round', 'adapter sha256', 'ε', 'aggregation', 'made', 'signature'],
    p.releases.map((r) => h('tr', { 'data-release': r.sequence },
      h('td', { text: '#' + r.sequence }), h('td', { text: r.manifest.kind }), h('td', { text: 'v' + r.manifest.version }), h('td', { text: r.manifest.round }),
      h('td', {}, h('code', { title: r.manifest.adapterSha256, text: r.manifest.adapterSha256.slice(0, 16) + '…' })), h('td', { text: fmt(r.manifest.epsilon) }),
      h('td', { text: r.manifest.aggregation }), h('td', { text: time(r.manifest.timestampMs) }), h('td', { text: r.signed ? 'signed' : 'awaiting signature' }))));
}

function renderProgram(p) {
  const admin = !!state.token;
  const rounds = [...p.rounds.values()].sort((a, b) => b.openedMs - a.openedMs || b.roundNumber - a.roundNumber);
  const done = [...p.rounds.values()].filter((r) => r.state === 'COMPLETED').sort((a, b) => a.roundNumber - b.roundNumber);
  const actions = admin ? h('span', { class: 'actions' },
    h('button', { text: 'pause', 'data-action': 'pause', onclick: () => act(p.id, 'pause') }),
    h('button', { text: 'resume', 'data-action': 'resume', onclick: () => act(p.id, 'resume') }),
    h('button', { text: 'stop', class: 'danger', 'data-action': 'stop', onclick: () => { if (confirm('Stop program ' + p.id + ' for good?')) act(p.id, 'stop'); } })) : null;
  const budget = p.epsilonBudget === null ? '' : ' / ' + fmt(p.epsilonBudget, 2);
  return h('section', { class: 'card', 'data-program': p.id, 'data-status': p.status.state },
    h('div', {}, h('h2', { text: p.id }), h('span', { class: 'badge ' + p.status.state, text: p.status.state }), actions, h('span', { class: 'reason', text: p.status.reason })),
    h('div', { class: 'stats' },
      stat(p.roundsCompleted + ' / ' + p.roundsTotal, 'rounds completed'),
      stat('v' + p.adapterVersion, 'adapter version'),
      stat(p.dpMode === 'none' ? 'no DP' : fmt(p.epsilonSpent, 3) + budget, p.dpMode === 'none' ? 'privacy' : 'ε spent (δ = ' + p.delta + ', ' + p.dpMode + ')'),
      stat(String(p.devicesEnrolled), 'devices enrolled'),
      stat(String(p.devicesActive), 'active (10 min)'),
      stat(String(p.devicesRevoked), 'revoked')),
    h('div', { class: 'charts' },
      chart('loss', 'held-out loss per round', done.filter((r) => r.heldOutLoss !== null).map((r) => ({ x: r.roundNumber, y: r.heldOutLoss })), 3, 'no held-out loss: the program evaluates none'),
      chart('epsilon', 'ε spent per round', done.map((r) => ({ x: r.roundNumber, y: r.epsilonSpent })), 3, 'no completed round yet', true)),
    h('h3', { text: 'rounds' }), roundsTable(rounds),
    h('h3', { text: 'devices (' + p.devicesEnrolled + ')' }), devicesTable(p, admin),
    h('h3', { text: 'adapter versions and releases' }), releasesTable(p));
}

function render() {
  const main = $('programs');
  const cards = [...state.programs.values()].map(renderProgram);
  main.replaceChildren(...(cards.length ? cards : [h('p', { class: 'muted', text: 'No program.' })]));
  $('lock').hidden = !state.token; $('unlock').hidden = !!state.token; $('token').hidden = !!state.token;
}

let pending = false;
function schedule() { if (pending) return; pending = true; requestAnimationFrame(() => { pending = false; render(); }); }

async function act(id, verb) { await adminCall('programs/' + encodeURIComponent(id) + '/' + verb, 'POST'); }

function programFrom(view, rounds) {
  const old = state.programs.get(view.id);
  const map = old ? old.rounds : new Map();
  if (rounds) { map.clear(); for (const r of rounds) map.set(r.roundId, r); }
  return Object.assign({}, view, { rounds: map });
}

function connect() {
  const es = new EventSource('/api/events');
  const conn = $('conn');
  es.addEventListener('open', () => { conn.dataset.conn = 'live'; conn.textContent = 'live'; });
  es.addEventListener('error', () => { conn.dataset.conn = 'lost'; conn.textContent = 'reconnecting…'; });
  es.addEventListener('snapshot', (ev) => {
    const snap = JSON.parse(ev.data);
    state.programs = new Map();
    for (const p of snap.programs) state.programs.set(p.id, programFrom(p, p.rounds));
    document.body.dataset.snapshot = String(snap.timeMs);
    schedule();
  });
  es.addEventListener('round', (ev) => {
    const u = JSON.parse(ev.data);
    const p = state.programs.get(u.programId);
    if (!p) return;
    p.rounds.set(u.round.roundId, u.round);
    schedule();
  });
  es.addEventListener('program', (ev) => {
    const u = JSON.parse(ev.data);
    state.programs.set(u.program.id, programFrom(u.program));
    schedule();
  });
}

$('admin').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  if (!t) return;
  state.token = t;
  if (await adminCall('programs', 'GET')) { sessionStorage.setItem('fedtune-admin-token', t); $('token').value = ''; render(); }
  else state.token = '';
});
$('lock').addEventListener('click', () => { state.token = ''; sessionStorage.removeItem('fedtune-admin-token'); render(); });
setInterval(schedule, 5000); // durations and "last seen" move on
connect();
`;

/** One file of the web app. */
export interface PageAsset {
  readonly body: string;
  readonly type: string;
}

/** The web app's files by URL path. */
export const PAGE_ASSETS: Readonly<Record<string, PageAsset>> = Object.freeze({
  '/index.html': { body: INDEX_HTML, type: 'text/html; charset=utf-8' },
  '/app.css': { body: APP_CSS, type: 'text/css; charset=utf-8' },
  '/app.js': { body: APP_JS, type: 'text/javascript; charset=utf-8' },
});
