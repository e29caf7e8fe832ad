/**
 * The identities of a simulated population, persisted compactly: one 32-byte master secret (the
 * "seed file", mode 0600) from which device i's Ed25519 signing seed and X25519 secret are
 * derived on demand (SHA-256 of the secret, a label and i), and per program one line per
 * enrolled device ("index<TAB>deviceId" in enrolments-<program>.tsv, appended as devices enrol).
 * An idle device therefore costs nothing but its enrolments' device ids; keys exist only while
 * the device works.
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import type { DeviceIdentityStore, Enrolment } from '../../client/index.js';
import { signedMessage } from '../../privacy/sign.js';
import { fullMethodName, signingPayload } from '../../proto/signing.js';

const SEED_FILE = 'population.seed';
const enrolmentsFile = (programId: string): string => `enrolments-${programId}.tsv`;

/** Device i's keys, derived from the population's master secret. */
export function deriveDeviceKeys(master: Uint8Array, index: number): { sign: nacl.SignKeyPair; box: nacl.BoxKeyPair } {
  checkMaster('deriveDeviceKeys', master, index);
  const part = (label: string): Uint8Array => Uint8Array.from(createHash('sha256').update(master).update(`fedtune-population/${label}/${index}`).digest());
  const signSeed = part('sign');
  const boxSecret = part('box');
  // public keys by OpenSSL (the same bytes as tweetnacl's fromSeed / fromSecretKey, ~50× faster)
  const raw = (secret: Uint8Array, crv: 'Ed25519' | 'X25519'): Uint8Array => {
    const d = Buffer.from(secret).toString('base64url');
    // raw JWK import (x is not read for a private key); ~6× faster than PKCS#8 DER
    const jwk = createPublicKey(createPrivateKey({ key: { kty: 'OKP', crv, d, x: d }, format: 'jwk' })).export({ format: 'jwk' });
    return Uint8Array.from(Buffer.from(jwk.x as string, 'base64url'));
  };
  const signPublic = raw(signSeed, 'Ed25519');
  const secretKey = new Uint8Array(64);
  secretKey.set(signSeed);
  secretKey.set(signPublic, 32);
  return { sign: { publicKey: signPublic, secretKey }, box: { publicKey: raw(boxSecret, 'X25519'), secretKey: boxSecret } };
}

function checkMaster(fn: string, master: Uint8Array, index: number): void {
  if (!(master instanceof Uint8Array) || master.length !== 32) throw new TypeError(`${fn}: master must be 32 bytes`);
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`${fn}: index must be a non-negative integer, got ${index}`);
}

/** Device i's Ed25519 signing key as a node:crypto key object (its seed as in {@link deriveDeviceKeys}; no public or box key is derived). */
export function deriveSignKey(master: Uint8Array, index: number): KeyObject {
  checkMaster('deriveSignKey', master, index);
  const d = createHash('sha256').update(master).update(`fedtune-population/sign/${index}`).digest('base64url');
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d, x: d }, format: 'jwk' });
}

/**
 * The `auth` field of a request `method` ("fedtune.v1.Coordinator/CheckIn") of `programId`, signed
 * by device i's key (what client/rpc.ts authFor makes, with one key import and no other
 * derivation: a fleet's check-ins sign thousands of these per round).
 */
export function populationAuth(master: Uint8Array, index: number, deviceId: string, method: string, request: Record<string, unknown>, programId: string, now = Date.now(), nonce = randomBytes(16).toString('hex')): { deviceId: string; nonce: string; timestampMs: number; signature: Buffer } {
  const full = fullMethodName(method);
  const message = signedMessage({ method: full, programId }, deviceId, nonce, now, signingPayload(full, request));
  return { deviceId, nonce, timestampMs: now, signature: cryptoSign(null, message, deriveSignKey(master, index)) };
}

/** A population's identities in one folder (see the file comment). */
export class PopulationIdentities {
  /** The master secret. */
  readonly master: Uint8Array;
  /** Per program, the device id per device index ('' until enrolled). */
  private readonly ids = new Map<string, string[]>();

  /** Open (or create) the identities of `size` devices in `dir`. */
  constructor(
    readonly dir: string,
    readonly size: number,
  ) {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('PopulationIdentities: dir must be a folder path');
    if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`PopulationIdentities: size must be a positive integer, got ${size}`);
    mkdirSync(dir, { recursive: true });
    const seedPath = join(dir, SEED_FILE);
    if (!existsSync(seedPath)) writeFileSync(seedPath, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const hex = readFileSync(seedPath, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`population seed file ${seedPath} must hold 64 hex characters`);
    this.master = Uint8Array.from(Buffer.from(hex, 'hex'));
  }

  private table(programId: string): string[] {
    let ids = this.ids.get(programId);
    if (ids) return ids;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(programId)) throw new RangeError(`PopulationIdentities: program id ${JSON.stringify(programId)} is not a valid program id`);
    ids = new Array<string>(this.size).fill('');
    const path = join(this.dir, enrolmentsFile(programId));
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        const [i, id] = line.split('\t');
        const k = Number(i);
        if (id && Number.isInteger(k) && k >= 0 && k < this.size) ids[k] = id;
      }
    }
    this.ids.set(programId, ids);
    return ids;
  }

  /** Device `index`'s id in `programId` ('' = not enrolled). */
  deviceId(programId: string, index: number): string {
    return this.table(programId)[index] ?? '';
  }

  /** How many devices are enrolled in `programId`. */
  enrolledCount(programId: string): number {
    return this.table(programId).reduce((n, id) => n + (id ? 1 : 0), 0);
  }

  /** Record enrolments (index, device id) in `programId` reported by workers; appended to its file. */
  record(programId: string, entries: readonly (readonly [number, string])[]): void {
    const ids = this.table(programId);
    const lines: string[] = [];
    for (const [i, id] of entries) {
      if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new RangeError(`PopulationIdentities.record: index ${i} outside [0, ${this.size})`);
      if (ids[i] === id) continue;
      ids[i] = id;
      lines.push(`${i}\t${id}`);
    }
    if (lines.length) appendFileSync(join(this.dir, enrolmentsFile(programId)), `${lines.join('\n')}\n`);
  }
}

/**
 * The identity store a hosted Device uses: keys derived from the master secret, the known
 * enrolment (if any) of `programId`, and new enrolments reported to `onEnrol`.
 */
export function populationIdentityStore(master: Uint8Array, index: number, known: { programId: string; enrolment?: Enrolment }, onEnrol: (e: Enrolment) => void): DeviceIdentityStore {
  const { sign, box } = deriveDeviceKeys(master, index);
  return {
    identity: { sign, box, enrolments: known.enrolment ? { [known.programId]: known.enrolment } : {} },
    saveEnrolment: (_programId, e) => onEnrol(e),
  };
}
