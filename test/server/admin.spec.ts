import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Device } from '../../client/index.js';
import { Admin, checkAdminToken, CoordinatorError, DashboardFeed, sameSecret, startCoordinator, type RejectionRecord, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from './fixtures.js';

const actor = { name: 'ops@test', address: '127.0.0.1:1' };
const kindOf = (kind: string) => (e: unknown) => e instanceof CoordinatorError && e.kind === kind;

describe('admin: the token check, revocation of a device mid-round, and what the dashboard counts', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-admin-unit-'));
  let running: RunningCoordinator;
  before(async () => {
    running = await startCoordinator({ dataDir: join(dir, 'coord'), port: 0, programs: [smallProgram('rv', { cohortSize: 2, minUpdates: 2, minContributors: 2, rounds: 1 })] });
  });
  after(() => running?.shutdown(500));

  it('compares tokens by value whatever their lengths, and refuses short or spaced tokens', () => {
    assert.equal(sameSecret('a'.repeat(20), 'a'.repeat(20)), true);
    assert.equal(sameSecret('a'.repeat(20), 'a'.repeat(19) + 'b'), false);
    assert.equal(sameSecret('a'.repeat(20), 'a'.repeat(21)), false);
    assert.equal(sameSecret('', ''), true);
    assert.throws(() => checkAdminToken('short', '--admin-token'), /--admin-token must be at least 16 characters/);
    assert.throws(() => checkAdminToken('has a space in it!!', 'X'), /must not contain white space/);
    const off = new Admin(running.coordinator, undefined);
    assert.throws(() => off.authorize('whatever-token-123', actor, 'programs list'), kindOf('permission-denied'));
    const on = new Admin(running.coordinator, 'x'.repeat(16));
    assert.throws(() => on.authorize(undefined, actor, 'programs list'), kindOf('unauthenticated'));
    assert.throws(() => on.authorize('y'.repeat(16), actor, 'programs list'), kindOf('unauthenticated'));
    on.authorize('x'.repeat(16), actor, 'programs list');
  });

  it('drops a revoked device’s in-flight update, counts it on the dashboard, and refuses its re-enrolment', async () => {
    const c = running.coordinator;
    const lines: Record<string, unknown>[] = [];
    const admin = new Admin(c, 'admin-token-0123456789', (msg, f) => lines.push({ msg, ...f }));
    const feed = await DashboardFeed.open(c, admin, 60_000);
    const rejections: RejectionRecord[] = [];
    const p = c.program('rv');
    const sub = p.runner.rejections$.subscribe((r) => rejections.push(r));
    const dev = new Device({ address: running.address, programId: 'rv', dataDir: join(dir, 'dev'), enrolmentToken: TOKEN, text: ['unused'], retry: { attempts: 1 } });
    try {
      const id = await dev.enroll();
      const work = p.runner.checkIn(id);
      assert.ok('roundId' in work, 'the device is selected for the open round');
      await admin.revoke('rv', id, actor);
      assert.deepEqual(rejections.map((r) => [r.deviceId, r.roundId, r.kind]), [[id, work.roundId, 'revoked']]);
      // the update arriving after the revocation is refused before it is even opened, and the round would not take it anyway
      const device = await c.store.device(id);
      assert.ok(device);
      assert.throws(() => c.acceptUpdate(device, p, work.roundId, 'f32', 8, new Uint8Array(64)), kindOf('permission-denied'));
      assert.throws(() => p.runner.submit(id, work.roundId, new Float32Array(p.updateLength), 8, 64), kindOf('failed-precondition'));
      const row = feed.snapshot().programs[0].rounds.find((r) => r.roundId === work.roundId);
      assert.deepEqual(row?.rejected, { revoked: 1 });
      assert.equal(row?.state, 'OPEN');
      assert.deepEqual(await admin.revoke('rv', id, actor), { deviceId: id, revoked: true, already: true });
      assert.deepEqual(lines.filter((l) => l.action === 'device revoke').map((l) => [l.actor, l.device, l.outcome]), [['ops@test', id, 'ok'], ['ops@test', id, 'ok']]);
      // the same key enrolling again (another address string makes the device send Enroll) is refused
      const again = new Device({ address: running.address.replace('127.0.0.1', 'localhost'), programId: 'rv', dataDir: join(dir, 'dev'), enrolmentToken: TOKEN, text: ['unused'], retry: { attempts: 1 } });
      try {
        await assert.rejects(again.enroll(), (e: grpc.ServiceError) => e.code === grpc.status.PERMISSION_DENIED && /revoked/.test(e.details));
      } finally {
        again.close();
      }
    } finally {
      sub.unsubscribe();
      feed.close();
      dev.close();
    }
  });
});
