import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { SecAggDevice, type KeyAdvert, type UnmaskResponse } from '../../privacy/index.js';
import { seededRng } from '../../random/rng.js';
import { CoordinatorError, SecAggRound, type SecAggOutcome } from '../../server/index.js';

/** A SecAgg round of `n` devices driven in-process (no transport), with its outcome and log as promises/arrays. */
function round(n: number, over: { signKeyOf?: (dev: string) => Uint8Array; onOutcome?: (o: SecAggOutcome) => void; phaseTimeoutMs?: number } = {}) {
  const keys = new Map(Array.from({ length: n }, (_, i) => [`dev-${i + 1}`, nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(i + 1))]));
  const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
  let resolve!: (o: SecAggOutcome) => void;
  const outcome = new Promise<SecAggOutcome>((r) => (resolve = r));
  const r = new SecAggRound(
    'p.r1.a1',
    n,
    3,
    16,
    1,
    { phaseTimeoutMs: over.phaseTimeoutMs ?? 60_000 },
    over.signKeyOf ?? ((dev) => keys.get(dev)!.publicKey),
    (o) => {
      resolve(o);
      over.onOutcome?.(o);
    },
    (msg, fields) => logs.push({ msg, fields }),
  );
  return { r, keys, logs, outcome, devs: [...keys.keys()] };
}

/** The CoordinatorError kind `fn` throws, or 'none'. */
function refusal(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (e) {
    assert.ok(e instanceof CoordinatorError, `expected a CoordinatorError, got ${String(e)}`);
    return e.kind;
  }
}

/** Select every device and advertise; returns the SecAggDevices. */
function advertised(s: ReturnType<typeof round>): Map<string, SecAggDevice> {
  for (const d of s.devs) s.r.select(d);
  const out = new Map<string, SecAggDevice>();
  for (const d of s.devs) {
    const p = s.r.paramsFor(d)!;
    const dev = new SecAggDevice(p.myId, p.params, s.keys.get(d)!.secretKey, seededRng(p.myId));
    out.set(d, dev);
    s.r.advertise(d, dev.advertise(), 100);
  }
  return out;
}

describe('server/secagg-round: every participant’s bytes are checked, and a step that throws fails the round', () => {
  it('refuses adverts whose keys are not 32 bytes, even when the owner signed them', () => {
    const s = round(3);
    for (const d of s.devs) s.r.select(d);
    const p = s.r.paramsFor(s.devs[0])!;
    const good = new SecAggDevice(p.myId, p.params, s.keys.get(s.devs[0])!.secretKey, seededRng(1)).advertise();
    const msg = new TextEncoder().encode(`fedtune.secagg.v2|${p.params.roundId}|${p.myId}|${Buffer.alloc(5).toString('hex')}|${Buffer.from(good.shareKey).toString('hex')}`);
    const short: KeyAdvert = { ...good, maskKey: new Uint8Array(5), signature: nacl.sign.detached(msg, s.keys.get(s.devs[0])!.secretKey) };
    assert.equal(refusal(() => s.r.advertise(s.devs[0], short, 10)), 'invalid-argument');
    assert.equal(refusal(() => s.r.advertise(s.devs[0], good, 10)), 'none');
    s.r.stop();
  });

  it('refuses share lists with a stranger, a duplicate or a missing neighbour as INVALID_ARGUMENT, and takes the right one', () => {
    const s = round(5);
    const devices = advertised(s);
    const d = s.devs[0];
    const dev = devices.get(d)!;
    const msgs = dev.shareKeys(new Map([...devices.values()].map((x) => [x.id, x.advertise()])), new Map([...s.keys.values()].map((k, i) => [i + 1, k.publicKey])));
    assert.ok(msgs.length === 4);
    assert.equal(refusal(() => s.r.shareKeys(d, [...msgs, msgs[0]], 10)), 'invalid-argument'); // duplicate recipient
    assert.equal(refusal(() => s.r.shareKeys(d, msgs.slice(1), 10)), 'invalid-argument'); // a neighbour left out
    assert.equal(refusal(() => s.r.shareKeys(d, [...msgs.slice(1), { ...msgs[0], to: 99 }], 10)), 'invalid-argument'); // a stranger
    assert.equal(refusal(() => s.r.shareKeys(d, [...msgs.slice(1), { ...msgs[0], sealed: new Uint8Array(5000) }], 10)), 'invalid-argument'); // oversized
    assert.equal(refusal(() => s.r.shareKeys(d, msgs, 10)), 'none');
    s.r.stop();
  });

  it('refuses unmask answers about owners not asked for, or from the wrong x', async () => {
    const s = round(3);
    const devices = advertised(s);
    const adverts = new Map([...devices.values()].map((x) => [x.id, x.advertise()]));
    const signKeys = new Map(s.devs.map((name, i) => [i + 1, s.keys.get(name)!.publicKey]));
    for (const [name, dev] of devices) s.r.shareKeys(name, dev.shareKeys(adverts, signKeys), 10);
    for (const [name, dev] of devices) {
      const got = s.r.sharesFor(name)!;
      dev.receiveShares(got.shares, got.senders);
      s.r.maskedInput(name, dev.maskedInput(new Float32Array(16).fill(0.25)), 64);
    }
    const [first, dev1] = [...devices][0];
    const req = s.r.unmaskRequest(first)!;
    const answer = dev1.unmask(req);
    const asKey: UnmaskResponse = { from: answer.from, selfMask: new Map(), key: answer.selfMask };
    assert.equal(refusal(() => s.r.unmask(first, asKey, 10)), 'invalid-argument');
    const wrongX: UnmaskResponse = { ...answer, selfMask: new Map([...answer.selfMask].map(([o, sh]) => [o, { x: sh.x + 1, y: sh.y }])) };
    assert.equal(refusal(() => s.r.unmask(first, wrongX, 10)), 'invalid-argument');
    for (const [name, dev] of devices) s.r.unmask(name, name === first ? answer : dev.unmask(req), 10);
    const o = await s.outcome;
    assert.ok(o.ok, o.ok ? '' : o.reason);
    o.sum.forEach((v) => assert.ok(Math.abs(v - 0.75) < 1e-6));
  });

  it('an exception inside a phase step (in an RPC or in the phase timer) fails the round with a logged reason instead of escaping', async () => {
    // in an RPC: the cohort fills on the last select, and looking up a signing key throws
    const rpc = round(3, {
      signKeyOf: () => {
        throw new Error('the device record is gone');
      },
    });
    for (const d of rpc.devs) assert.equal(refusal(() => rpc.r.select(d)), 'none');
    const o = await rpc.outcome;
    assert.equal(o.ok, false);
    assert.match(o.ok ? '' : o.reason, /failed in phase selecting: the device record is gone/);
    assert.ok(rpc.logs.some((l) => l.msg === 'secure aggregation step threw'));
    // in the phase timer: 3 of 4 wanted check in, so the selection closes when its time is up
    const timer = round(4, {
      phaseTimeoutMs: 20,
      signKeyOf: () => {
        throw new Error('the key store is down');
      },
    });
    for (const d of timer.devs.slice(0, 3)) timer.r.select(d);
    const t = await timer.outcome;
    assert.equal(t.ok, false);
    assert.match(t.ok ? '' : t.reason, /the key store is down/);
  });

  it('an outcome handler that throws is logged, not thrown into the step', async () => {
    // one of three wanted checks in: the selection times out and the round fails
    const t = round(3, {
      phaseTimeoutMs: 10,
      onOutcome: () => {
        throw new Error('the runner broke');
      },
    });
    t.r.select(t.devs[0]);
    const o = await t.outcome;
    assert.equal(o.ok, false);
    assert.ok(t.logs.some((l) => l.msg === 'secure aggregation outcome handler failed' && /the runner broke/.test(String(l.fields?.error))));
  });
});
