/**
 * A device's identity in its data dir: Ed25519 signing keys, X25519 box keys, and per program
 * the device id and the program's box key it enrolled with. Written atomically, readable only
 * by the owner (mode 0600).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import type { BoxKeyPair } from '../privacy/box.js';
import type { SignKeyPair } from '../privacy/sign.js';

/** Enrolment in one program. */
export interface Enrolment {
  readonly deviceId: string;
  /** hex */
  readonly programBoxPublicKey: string;
  readonly address: string;
}

/** The device's keys and enrolments. */
export interface DeviceIdentity {
  readonly sign: SignKeyPair;
  readonly box: BoxKeyPair;
  readonly enrolments: Readonly<Record<string, Enrolment>>;
}

interface IdentityFile {
  version: 1;
  signSeed: string;
  boxSecret: string;
  enrolments: Record<string, Enrolment>;
}

const FILE = 'identity.json';

/** Load the identity in `dataDir`, creating fresh keys on first use. */
export function loadIdentity(dataDir: string): DeviceIdentity {
  if (typeof dataDir !== 'string' || dataDir === '') throw new TypeError('loadIdentity: dataDir must be a folder path');
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, FILE);
  let f: IdentityFile;
  if (existsSync(path)) {
    try {
      f = JSON.parse(readFileSync(path, 'utf8')) as IdentityFile;
    } catch (e) {
      throw new Error(`device identity ${path} is not readable JSON: ${(e as Error).message}`);
    }
    if (f.version !== 1 || !/^[0-9a-f]{64}$/.test(f.signSeed) || !/^[0-9a-f]{64}$/.test(f.boxSecret)) throw new Error(`device identity ${path} is malformed`);
  } else {
    f = { version: 1, signSeed: Buffer.from(nacl.randomBytes(32)).toString('hex'), boxSecret: Buffer.from(nacl.randomBytes(32)).toString('hex'), enrolments: {} };
    writeIdentity(dataDir, f);
  }
  return {
    sign: nacl.sign.keyPair.fromSeed(Uint8Array.from(Buffer.from(f.signSeed, 'hex'))),
    box: nacl.box.keyPair.fromSecretKey(Uint8Array.from(Buffer.from(f.boxSecret, 'hex'))),
    enrolments: f.enrolments ?? {},
  };
}

/** Remember an enrolment. */
export function saveEnrolment(dataDir: string, programId: string, e: Enrolment): void {
  const f = JSON.parse(readFileSync(join(dataDir, FILE), 'utf8')) as IdentityFile;
  f.enrolments = { ...f.enrolments, [programId]: e };
  writeIdentity(dataDir, f);
}

function writeIdentity(dataDir: string, f: IdentityFile): void {
  const path = join(dataDir, FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(f, null, 1), { mode: 0o600 });
  renameSync(tmp, path);
}
