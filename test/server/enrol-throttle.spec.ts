import assert from 'node:assert/strict';
import { EnrolThrottle, peerHost } from '../../server/enrol-throttle.js';

describe('server/enrol-throttle', () => {
  it('a peer waits once it reaches its limit, until its oldest failure leaves the window', () => {
    const t = new EnrolThrottle({ perPeer: 3, global: 100, windowMs: 10_000 });
    for (const at of [0, 1000, 2000]) {
      assert.equal(t.waitMs('a', at), 0);
      t.fail('a', at);
    }
    assert.equal(t.waitMs('a', 2500), 7500, 'until the failure at 0 is 10 s old');
    assert.equal(t.waitMs('b', 2500), 0, 'another peer is not held back');
    assert.equal(t.waitMs('a', 10_000), 0);
  });

  it('the global limit holds every peer back', () => {
    const t = new EnrolThrottle({ perPeer: 100, global: 4, windowMs: 1000 });
    ['a', 'b', 'c', 'd'].forEach((p, i) => t.fail(p, i));
    assert.equal(t.waitMs('e', 10), 990);
    assert.equal(t.waitMs('e', 1000), 0);
  });

  it('keys peers by host, not port, and refuses bad limits', () => {
    assert.equal(peerHost('ipv4:10.1.2.3:5555'), '10.1.2.3');
    assert.equal(peerHost('10.1.2.3:5555'), '10.1.2.3');
    assert.equal(peerHost('::ffff:127.0.0.1:40000'), '127.0.0.1');
    assert.equal(peerHost('ipv6:[::1]:40000'), '::1');
    assert.equal(peerHost('::1:40000'), '::1');
    assert.throws(() => new EnrolThrottle({ perPeer: 0 }), /perPeer must be a positive integer/);
  });
});
