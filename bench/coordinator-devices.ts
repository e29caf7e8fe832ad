/**
 * The light-device fleet of bench/coordinator-rounds.ts, run in a child process of its own so
 * the coordinator's CPU, event loop and RSS are measured apart from the devices'. The parent
 * forks this file with the fleet's settings as JSON in argv[2] and talks to it over IPC:
 *
 *   child → {t:'enrolled', s}               after every device has enrolled over gRPC
 *   parent → {t:'round', version}           release the devices into a round
 *   child → {t:'roundDone', deviceS, cpuS, refused}
 *   parent → {t:'exit'}
 *
 * Each device has its own Ed25519/X25519 keys, checks in (signed), draws a random update with
 * L2 norm in [0.5·C, 0.99·C] (no training), seals it to the program key (X25519 shared key made
 * once, XSalsa20-Poly1305, the same bytes privacy/box.ts `seal` makes) and uploads it with the
 * client's `uploadUpdate` (signed header). Devices sign with node:crypto's Ed25519 (patched into
 * tweetnacl's `sign.detached`, which the client library calls), as a phone would use its
 * platform's crypto: the fleet then keeps up with the coordinator on the machine's other core.
 */
import { createPrivateKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';
import { authFor, enrollRequestFor, unaryCall, uploadUpdate } from '../client/index.js';
import { encodeUpdate, loadProtos } from '../proto/index.js';
import type { CheckInResponse__Output } from '../proto/generated/fedtune/v1/CheckInResponse.js';
import type { CoordinatorClient } from '../proto/generated/fedtune/v1/Coordinator.js';
import type { EnrollResponse__Output } from '../proto/generated/fedtune/v1/EnrollResponse.js';

/** What the parent tells the fleet. */
export interface FleetSettings {
  readonly address: string;
  /** Coordinator replicas' addresses (bench/replicas.ts): channel k talks to addresses[k mod n]. Default [address]. */
  readonly addresses?: readonly string[];
  readonly programId: string;
  readonly token: string;
  readonly devices: number;
  readonly concurrency: number;
  readonly channels: number;
  /** Values in an update. */
  readonly floats: number;
  readonly clip: number;
}

const M = 'fedtune.v1.Coordinator';
/** DER prefix of an Ed25519 PKCS#8 private key; the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

// devices sign with node:crypto (tweetnacl's pure-JS signing is ~4 ms a signature)
{
  const parsed = new WeakMap<Uint8Array, KeyObject>();
  const sign = nacl.sign as unknown as { detached: typeof nacl.sign.detached };
  const verify = sign.detached.verify;
  const fast = ((m: Uint8Array, sk: Uint8Array): Uint8Array => {
    let k = parsed.get(sk);
    if (!k) {
      k = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, sk.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
      parsed.set(sk, k);
    }
    return new Uint8Array(cryptoSign(null, m, k));
  }) as typeof nacl.sign.detached;
  (fast as { verify: typeof verify }).verify = verify;
  sign.detached = fast;
}

/** Raw key bytes of a node:crypto key pair (JWK "d" and "x"). */
function rawKeys(type: 'ed25519' | 'x25519'): { secret: Uint8Array; pub: Uint8Array } {
  const { publicKey, privateKey } = generateKeyPairSync(type as 'ed25519');
  const d = privateKey.export({ format: 'jwk' }).d as string;
  const x = publicKey.export({ format: 'jwk' }).x as string;
  return { secret: new Uint8Array(Buffer.from(d, 'base64url')), pub: new Uint8Array(Buffer.from(x, 'base64url')) };
}

/** A random update with L2 norm uniform in [0.5·C, 0.99·C]. */
function randomUpdate(n: number, clip: number): Float32Array {
  const u = new Float32Array(n);
  let ss = 0;
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - Math.random()));
    const th = 2 * Math.PI * Math.random();
    u[i] = r * Math.cos(th);
    if (i + 1 < n) u[i + 1] = r * Math.sin(th);
  }
  for (let i = 0; i < n; i++) ss += u[i] * u[i];
  const k = (clip * (0.5 + 0.49 * Math.random())) / Math.sqrt(ss);
  for (let i = 0; i < n; i++) u[i] *= k;
  return u;
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

interface Dev {
  id: string;
  sign: nacl.SignKeyPair;
  /** X25519 shared key with the program (nacl.box.before). */
  shared: Uint8Array;
  client: CoordinatorClient;
}

async function main(s: FleetSettings): Promise<void> {
  const send = (m: object): void => void process.send?.(m);
  const { fedtune } = loadProtos();
  const addresses = s.addresses ?? [s.address];
  const clients: CoordinatorClient[] = Array.from({ length: s.channels }, (_, k) => new fedtune.fedtune.v1.Coordinator(addresses[k % addresses.length], grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  const t0 = performance.now();
  const devices: Dev[] = new Array(s.devices);
  await pool(
    Array.from({ length: s.devices }, (_, i) => i),
    s.concurrency,
    async (i) => {
      const ed = rawKeys('ed25519');
      const x = rawKeys('x25519');
      const sign: nacl.SignKeyPair = { publicKey: ed.pub, secretKey: Uint8Array.from([...ed.secret, ...ed.pub]) };
      const client = clients[i % s.channels];
      const res = await unaryCall<EnrollResponse__Output>((o, cb) => client.Enroll(enrollRequestFor(s.programId, s.token, sign, x.pub, `light-${i}`), o, cb), 120_000);
      devices[i] = { id: res.deviceId, sign, shared: nacl.box.before(Uint8Array.from(res.programBoxPublicKey), x.secret), client };
    },
  );
  send({ t: 'enrolled', s: (performance.now() - t0) / 1000 });

  const round = async (version: number): Promise<void> => {
    const cpu0 = process.cpuUsage();
    let deviceMs = 0;
    let refused = 0;
    const errors: Record<string, number> = {};
    const note = (e: unknown): void => {
      refused++;
      const m = e instanceof Error ? e.message.slice(0, 160) : String(e);
      errors[m] = (errors[m] ?? 0) + 1;
    };
    await pool(devices, s.concurrency, async (d) => {
      let t = performance.now();
      const req = { programId: s.programId, adapterVersion: version };
      const auth = authFor(`${M}/CheckIn`, req, d.id, d.sign);
      deviceMs += performance.now() - t;
      let res: CheckInResponse__Output;
      try {
        res = await unaryCall<CheckInResponse__Output>((o, cb) => d.client.CheckIn({ ...req, auth }, o, cb), 120_000);
      } catch (e) {
        note(e);
        return;
      }
      const work = res.work;
      if (!work) {
        note(new Error(`no work: ${res.later?.reason ?? '?'}`));
        return;
      }
      t = performance.now();
      const nonce = nacl.randomBytes(nacl.box.nonceLength);
      const ct = nacl.box.after(encodeUpdate(randomUpdate(s.floats, s.clip)), nonce, d.shared);
      const sealed = new Uint8Array(nonce.length + ct.length);
      sealed.set(nonce);
      sealed.set(ct, nonce.length);
      // uploadUpdate's synchronous part: SHA-256 of the payload, the signed header, the stream's start
      const p = uploadUpdate(d.client, d.id, d.sign, { programId: s.programId, roundId: work.roundId, numExamples: 8, encoding: 'f32', unclipped: false }, sealed, { deadlineMs: 120_000 });
      deviceMs += performance.now() - t;
      try {
        await p;
      } catch (e) {
        note(e);
      }
    });
    const cpu = process.cpuUsage(cpu0);
    if (refused > 0) console.error(`device fleet: ${refused} device(s) refused this round: ${JSON.stringify(errors)}`);
    send({ t: 'roundDone', deviceS: deviceMs / 1000, cpuS: (cpu.user + cpu.system) / 1e6, refused });
  };

  process.on('message', (m: { t: string; version?: number }) => {
    if (m.t === 'round') void round(m.version ?? 0);
    else if (m.t === 'exit') {
      for (const c of clients) c.close();
      process.exit(0);
    }
  });
}

if (process.send && process.argv[2]) await main(JSON.parse(process.argv[2]) as FleetSettings);
