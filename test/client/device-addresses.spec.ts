/**
 * A device given several coordinator addresses (replicas): a call that fails with UNAVAILABLE is
 * retried, with the retry policy's backoff, on the next address round the list; other refusals
 * are not moved. `fedtune device --coordinator a,b,c` gives the list.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Device, type DeviceEvent } from '../../client/index.js';
import { coordinatorAddresses } from '../../cli/device.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from '../server/fixtures.js';

/** A loopback address nothing listens on (a dead replica): calls to it fail UNAVAILABLE. */
function deadAddress(): Promise<string> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(`127.0.0.1:${port}`));
    });
  });
}

describe('client/device: a list of coordinator addresses', function () {
  this.timeout(60_000);
  let live: RunningCoordinator;
  before(async () => {
    live = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'fedtune-addr-')), programs: [smallProgram('ad', { rounds: 1 })] });
  });
  after(() => live.shutdown(1000));

  it('moves to the next address on UNAVAILABLE, and enrols through the live one', async () => {
    const dead = [await deadAddress(), await deadAddress()];
    const d = new Device({ address: [dead[0], dead[1], live.address], programId: 'ad', dataDir: mkdtempSync(join(tmpdir(), 'fedtune-addr-dev-')), enrolmentToken: TOKEN, text: ['x'], retry: { attempts: 4, baseMs: 5, maxMs: 20 } });
    const retries: DeviceEvent[] = [];
    d.progress$.subscribe((e) => e.kind === 'retry' && retries.push(e));
    try {
      assert.equal(d.address, dead[0]);
      const id = await d.enroll();
      assert.match(id, /^dev-/);
      assert.equal(d.address, live.address, 'it stays on the address that answered');
      assert.equal(retries.length, 2, 'one retry per dead address');
      assert.ok(live.coordinator.lastSeen.size === 0 && (await live.coordinator.store.device(id)), 'the live coordinator enrolled it');
    } finally {
      d.close();
    }
  });

  it('a refusal that is not UNAVAILABLE is not retried elsewhere', async () => {
    const dead = await deadAddress();
    const d = new Device({ address: [live.address, dead], programId: 'ad', dataDir: mkdtempSync(join(tmpdir(), 'fedtune-addr-dev-')), enrolmentToken: 'wrong-token', text: ['x'], retry: { attempts: 4, baseMs: 5, maxMs: 20 } });
    try {
      await assert.rejects(d.enroll(), (e: { code?: number }) => e.code === 7); // PERMISSION_DENIED
      assert.equal(d.address, live.address);
    } finally {
      d.close();
    }
  });

  it('refuses an empty list or an empty address, naming the option; the CLI flag splits on commas', () => {
    const o = { programId: 'p', dataDir: mkdtempSync(join(tmpdir(), 'fedtune-addr-dev-')), enrolmentToken: 't', text: ['x'] };
    assert.throws(() => new Device({ ...o, address: [] }), /options\.address/);
    assert.throws(() => new Device({ ...o, address: ['a:1', ''] }), /options\.address/);
    assert.deepEqual(coordinatorAddresses('a:1, b:2,c:3'), ['a:1', 'b:2', 'c:3']);
    assert.throws(() => coordinatorAddresses('a:1,,b:2'), /--coordinator/);
  });
});
