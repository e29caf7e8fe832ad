import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Device } from '../../client/index.js';
import type { AdminDevice, AdminProgram, AdminRound } from '../../server/index.js';
import { MODEL } from '../helpers.js';
import { startCoordinatorProcess, type CoordinatorLogLine, type CoordinatorProcess } from '../server/coordinator-process.js';
import { TOKEN } from '../server/fixtures.js';
import { adminTokenFrom } from '../../cli/dashboard.js';
import { adminBaseUrl } from '../../cli/admin.js';
import { failsWith, fedtune } from './run-fedtune.js';

const ADMIN = 'admin-token-0123456789abcdef';

/** The index of the first log line from `from` on that matches, waiting for it up to `ms`. */
function waitForLine(c: CoordinatorProcess, match: (l: CoordinatorLogLine) => boolean, from = 0, ms = 15_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false;
    const check = (): boolean => {
      const i = c.lines.findIndex((l, k) => k >= from && match(l));
      if (i >= 0 && !done) {
        done = true;
        clearTimeout(t);
        resolve(i);
      }
      return done;
    };
    const t = setTimeout(() => {
      done = true;
      reject(new Error(`no matching log line within ${ms} ms; last lines: ${JSON.stringify(c.lines.slice(-5))}`));
    }, ms);
    if (!check()) c.onLog(() => void check());
  });
}

function program(id: string) {
  return {
    id,
    base: MODEL.bin,
    tokenizer: MODEL.tok,
    enrolmentToken: TOKEN,
    lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 },
    training: { steps: 2, batchSize: 2, seqLen: 32, lr: 5e-3, quant: 'int8' },
    cohortSize: 2,
    minUpdates: 2,
    overSelect: 1,
    rounds: 3,
    // no device sends an update here: each attempt fails at its deadline and the next opens retryDelayMs later
    roundDeadlineMs: 700,
    retryDelayMs: 100,
  };
}

describe('fedtune admin against a real coordinator process', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-admin-'));
  const config = join(dir, 'programs.json');
  const data = join(dir, 'data');
  writeFileSync(config, JSON.stringify({ programs: [program('oz'), program('side')] }));
  const env = { FEDTUNE_ADMIN_TOKEN: ADMIN };
  let c: CoordinatorProcess;
  let http = '';
  const start = async (port = 0): Promise<void> => {
    c = await startCoordinatorProcess(config, data, { port, args: ['--http-port', '0'], env });
    const line = c.lines.find((l) => l.msg === 'dashboard listening');
    assert.ok(line, 'the coordinator logs where the dashboard listens');
    assert.equal(line.admin, true);
    http = `127.0.0.1:${line.port as number}`;
  };
  const admin = (...args: string[]) => fedtune('admin', '--coordinator', http, '--token', ADMIN, ...args);
  const adminJson = <T>(...args: string[]): T => {
    const r = admin('--json', ...args);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };
  const stop = async (): Promise<void> => {
    if (c?.alive()) {
      c.child.kill('SIGTERM');
      await c.exited;
    }
  };
  before(() => start());
  after(stop);

  it('reads the token from one source, refuses short ones, and takes host:port or a URL', () => {
    const file = join(dir, 'admin.token');
    writeFileSync(file, `${ADMIN}\n`);
    assert.equal(adminTokenFrom({ 'admin-token-file': file }, {}), ADMIN);
    assert.equal(adminTokenFrom({}, { FEDTUNE_ADMIN_TOKEN: ADMIN }), ADMIN);
    assert.equal(adminTokenFrom({}, {}), undefined);
    assert.throws(() => adminTokenFrom({ 'admin-token': 'short' }, {}), /--admin-token must be at least 16 characters/);
    assert.throws(() => adminTokenFrom({ 'admin-token': ADMIN, 'admin-token-file': file }, {}), /give the admin token once/);
    assert.equal(adminBaseUrl('127.0.0.1:8080'), 'http://127.0.0.1:8080/');
    assert.equal(adminBaseUrl('https://ops.example/fedtune'), 'https://ops.example/fedtune/');
    assert.throws(() => adminBaseUrl('8080'), /--coordinator must be host:port/);
  });

  it('refuses a wrong or missing token, and audits the refusal', async () => {
    const from = c.lines.length;
    failsWith(fedtune('admin', '--coordinator', http, '--token', 'not-the-admin-token-at-all', 'programs', 'list'), /the admin token is wrong \(HTTP 401\)/);
    failsWith(fedtune('admin', '--coordinator', http, 'programs', 'list'), /the admin token is required/);
    failsWith(admin('program', 'explode', 'oz'), /unknown admin command "program explode oz"/);
    const i = await waitForLine(c, (l) => l.msg === 'admin action' && l.outcome === 'refused', from);
    assert.equal(c.lines[i].why, 'wrong token');
    assert.equal(c.lines[i].action, 'programs list');
    assert.match(String(c.lines[i].address), /^127\.0\.0\.1:\d+$/);
  });

  it('pause stops new rounds (the open one runs to its close), resume opens the next attempt at once', async () => {
    const listed = adminJson<AdminProgram[]>('programs', 'list');
    assert.deepEqual(listed.map((p) => [p.id, p.status.state]), [['oz', 'running'], ['side', 'running']]);
    const from = c.lines.length;
    const paused = admin('program', 'pause', 'oz');
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^oz\s+paused\s/m);
    const audit = await waitForLine(c, (l) => l.msg === 'admin action' && l.action === 'program pause', from);
    assert.equal(c.lines[audit].outcome, 'ok');
    assert.match(String(c.lines[audit].actor), /@/);
    // the attempt open when the pause took effect (its audit line) fails at its deadline (0 updates);
    // without the pause the next would open 100 ms later (if none was open, the pause itself is the mark)
    const closed = await waitForLine(c, (l) => l.msg === 'round failed' && l.program === 'oz', audit, 3000).catch(() => audit);
    // the other program goes on: two of its attempts open (~1.6 s of its 700 + 100 ms cycle) while oz opens none
    const sideOpen = (l: CoordinatorLogLine): boolean => l.msg === 'round open' && l.program === 'side';
    await waitForLine(c, sideOpen, (await waitForLine(c, sideOpen, closed)) + 1);
    assert.equal(c.lines.slice(closed).filter((l) => l.msg === 'round open' && l.program === 'oz').length, 0, 'no round opens while paused');
    const rounds = adminJson<AdminRound[]>('rounds', 'oz');
    assert.ok(rounds.length >= 1 && rounds.every((r) => r.state === 'failed'), JSON.stringify(rounds));
    const attempts = rounds.length;

    const before = c.lines.length;
    assert.equal(admin('program', 'resume', 'oz').code, 0);
    const opened = await waitForLine(c, (l) => l.msg === 'round open' && l.program === 'oz', before);
    assert.equal(c.lines[opened].attempt, attempts + 1);
    assert.equal(adminJson<AdminProgram[]>('programs', 'list')[0].status.state, 'running');
  });

  it('stop ends a program for good: its open round fails, it does not resume, the others go on', async () => {
    const from = c.lines.length;
    assert.match(admin('program', 'stop', 'side').stdout, /^side\s+stopped\s/m);
    const audit = await waitForLine(c, (l) => l.msg === 'admin action' && l.action === 'program stop' && l.outcome === 'ok', from);
    failsWith(admin('program', 'resume', 'side'), /program "side" was stopped .*does not resume.*\(HTTP 409\)/);
    failsWith(admin('program', 'pause', 'nope'), /no program "nope" on this coordinator \(HTTP 404\)/);
    // the attempt open at the stop (if one was: between attempts none is) failed with the reason; none opened since
    const rounds = adminJson<AdminRound[]>('rounds', 'side');
    assert.ok(rounds.every((r) => r.state === 'failed'), JSON.stringify(rounds));
    const stoppedLines = c.lines.slice(audit).filter((l) => l.program === 'side' && (l.msg === 'round open' || l.msg === 'round failed'));
    assert.ok(stoppedLines.every((l) => l.msg === 'round failed' && /stopped by/.test(String(l.reason))), JSON.stringify(stoppedLines));
    await waitForLine(c, (l) => l.msg === 'round open' && l.program === 'oz', audit); // the other program goes on
  });

  it('revoke refuses the device from its next call, also after a restart; other devices go on', async () => {
    const devices = [0, 1].map((i) => new Device({ address: c.address, programId: 'oz', dataDir: join(dir, `dev-${i}`), enrolmentToken: TOKEN, text: ['unused'], label: `reader-${i}`, retry: { attempts: 1 } }));
    const ids = await Promise.all(devices.map((d) => d.enroll()));
    await Promise.all(devices.map((d) => d.program()));
    const listed = adminJson<AdminDevice[]>('devices', 'list', 'oz');
    assert.deepEqual(listed.map((d) => d.id).sort(), [...ids].sort());
    assert.ok(listed.every((d) => d.active && !d.revoked && d.lastSeenMs > 0));

    const from = c.lines.length;
    assert.match(admin('device', 'revoke', 'oz', ids[0]).stdout, new RegExp(`^${ids[0]} revoked$`, 'm'));
    await waitForLine(c, (l) => l.msg === 'admin action' && l.action === 'device revoke' && l.device === ids[0] && l.outcome === 'ok', from);
    await assert.rejects(devices[0].program(), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED && /was revoked by the coordinator's administrator/.test(e.details));
    await devices[1].program();
    failsWith(admin('device', 'revoke', 'side', ids[1]), /program "side" has no device .*\(HTTP 404\)/);
    // pause oz too: both outlive the restart
    assert.equal(admin('program', 'pause', 'oz').code, 0);
    for (const d of devices) d.close();

    const grpcPort = Number(c.address.split(':').pop());
    await stop();
    await start(grpcPort);
    const again = [0, 1].map((i) => new Device({ address: c.address, programId: 'oz', dataDir: join(dir, `dev-${i}`), enrolmentToken: TOKEN, text: ['unused'], retry: { attempts: 1 } }));
    try {
      // the same address: each device reuses its enrolment, and its next request is refused
      assert.deepEqual(await Promise.all(again.map((d) => d.enroll())), ids);
      await assert.rejects(again[0].program(), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED);
      await again[1].program();
    } finally {
      for (const d of again) d.close();
    }
    const after = adminJson<AdminDevice[]>('devices', 'list', 'oz');
    assert.deepEqual(after.find((d) => d.id === ids[0])?.revoked, true);
    assert.deepEqual(
      adminJson<AdminProgram[]>('programs', 'list').map((p) => [p.id, p.status.state, p.devicesRevoked]),
      [['oz', 'paused', 1], ['side', 'stopped', 0]],
    );
    assert.equal(c.lines.filter((l) => l.msg === 'round open').length, 0, 'a paused or stopped program opens no round after a restart');
  });
});
