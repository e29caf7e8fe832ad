/**
 * Signed adapter releases (proto/CONTRACT.md, "Releases"): every adapter version a program
 * publishes carries a release manifest — canonical JSON bytes — and an Ed25519 signature by the
 * program's release key over exactly those bytes. A verifier checks the signature over the bytes
 * as received and only then parses them; it never re-encodes. This module defines the manifest,
 * its canonical bytes, the `.release.json` file a release travels in outside gRPC, and one
 * verification that answers with a sentence ({@link ReleaseError}) when anything is wrong.
 */
import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto';
import nacl from 'tweetnacl';

/** The first field of every manifest: what it is and the rule it follows. */
export const RELEASE_FORMAT = 'fedtune-release-v1';

/** What a release does: publish a new version, or take the program back to an older one. */
export type ReleaseKind = 'version' | 'rollback';

/** The LoRA shape a manifest names (the program's, fixed for its life). */
export interface ReleaseLora {
  readonly rank: number;
  readonly alpha: number;
  readonly targets: readonly string[];
  readonly dropout: number;
  readonly freezeA: boolean;
  readonly seed: number;
}

/** One release: what a device applies, and what it was made from. */
export interface ReleaseManifest {
  readonly program: string;
  /** Strictly increasing per program across every release, rollbacks included (1, 2, …). */
  readonly sequence: number;
  readonly kind: ReleaseKind;
  /** The adapter version this release makes current (for a rollback: the older version). */
  readonly version: number;
  /** The round that produced the version (0 for the initial adapter). */
  readonly round: number;
  /** hex SHA-256 of the base the adapter is for (its identity, as adapters record it). */
  readonly baseSha256: string;
  /** hex SHA-256 and size of the adapter file (safetensors). */
  readonly adapterSha256: string;
  readonly adapterBytes: number;
  readonly lora: ReleaseLora;
  /** Privacy spent by the program when the release was made, at `delta` (0 without DP). */
  readonly epsilon: number;
  readonly delta: number;
  /** How updates were aggregated, e.g. "fedavg", "fedavg+fedadam", "exact-dw", "trimmed-mean", "fedavg+secagg". */
  readonly aggregation: string;
  /** When the release was made, ms since the Unix epoch. */
  readonly timestampMs: number;
}

/** A manifest's bytes and the signature over them (empty while an offline signature is awaited). */
export interface SignedRelease {
  readonly manifest: Uint8Array;
  readonly signature: Uint8Array;
}

/** A release refused, with one sentence saying why. */
export class ReleaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReleaseError';
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const PROGRAM = /^[A-Za-z0-9._-]{1,64}$/;
const AGGREGATION = /^[a-z0-9+._-]{1,64}$/;
const TARGET = /^[a-z0-9_]{1,32}$/;

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const isFiniteNonNeg = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && n >= 0;

/** Why `m` is not a valid manifest, or undefined. */
function manifestProblem(m: ReleaseManifest): string | undefined {
  if (typeof m.program !== 'string' || !PROGRAM.test(m.program)) return 'program must be 1–64 of [A-Za-z0-9._-]';
  if (!isCount(m.sequence) || m.sequence < 1) return 'sequence must be a positive integer';
  if (m.kind !== 'version' && m.kind !== 'rollback') return 'kind must be "version" or "rollback"';
  if (!isCount(m.version)) return 'version must be an integer ≥ 0';
  if (!isCount(m.round)) return 'round must be an integer ≥ 0';
  if (typeof m.baseSha256 !== 'string' || !HEX64.test(m.baseSha256)) return 'base_sha256 must be 64 lowercase hex characters';
  if (typeof m.adapterSha256 !== 'string' || !HEX64.test(m.adapterSha256)) return 'adapter_sha256 must be 64 lowercase hex characters';
  if (!isCount(m.adapterBytes) || m.adapterBytes < 1) return 'adapter_bytes must be a positive integer';
  const l = m.lora;
  if (!l || typeof l !== 'object') return 'lora must be an object';
  if (!isCount(l.rank) || l.rank < 1) return 'lora.rank must be a positive integer';
  if (!isFiniteNonNeg(l.alpha) || l.alpha === 0) return 'lora.alpha must be a positive number';
  if (!Array.isArray(l.targets) || l.targets.length === 0 || !l.targets.every((t) => typeof t === 'string' && TARGET.test(t))) return 'lora.targets must be a non-empty list of matrix names';
  if (!isFiniteNonNeg(l.dropout) || l.dropout >= 1) return 'lora.dropout must be in [0, 1)';
  if (typeof l.freezeA !== 'boolean') return 'lora.freeze_a must be true or false';
  if (typeof l.seed !== 'number' || !Number.isSafeInteger(l.seed)) return 'lora.seed must be a safe integer';
  if (!isFiniteNonNeg(m.epsilon)) return 'epsilon must be a finite number ≥ 0';
  if (!isFiniteNonNeg(m.delta) || m.delta >= 1) return 'delta must be in [0, 1)';
  if (typeof m.aggregation !== 'string' || !AGGREGATION.test(m.aggregation)) return 'aggregation must be 1–64 of [a-z0-9+._-]';
  if (!isCount(m.timestampMs)) return 'timestamp_ms must be an integer ≥ 0';
  return undefined;
}

/** The manifest as the JSON object of its canonical form, keys in their fixed order. */
function canonicalObject(m: ReleaseManifest): Record<string, unknown> {
  return {
    format: RELEASE_FORMAT,
    program: m.program,
    sequence: m.sequence,
    kind: m.kind,
    version: m.version,
    round: m.round,
    base_sha256: m.baseSha256,
    adapter_sha256: m.adapterSha256,
    adapter_bytes: m.adapterBytes,
    lora: { rank: m.lora.rank, alpha: m.lora.alpha, targets: [...m.lora.targets], dropout: m.lora.dropout, freeze_a: m.lora.freezeA, seed: m.lora.seed },
    epsilon: m.epsilon,
    delta: m.delta,
    aggregation: m.aggregation,
    timestamp_ms: m.timestampMs,
  };
}

/**
 * The canonical bytes of a manifest: UTF-8 (in fact ASCII) JSON with no whitespace, keys in the
 * order of CONTRACT.md, numbers as ECMAScript's Number::toString writes them. TypeError/RangeError
 * for a manifest with a missing or invalid field.
 */
export function encodeManifest(m: ReleaseManifest): Uint8Array {
  if (!m || typeof m !== 'object') throw new TypeError('encodeManifest: manifest must be an object');
  const problem = manifestProblem(m);
  if (problem) throw new RangeError(`encodeManifest: ${problem}`);
  return new TextEncoder().encode(JSON.stringify(canonicalObject(m)));
}

/**
 * Parse manifest bytes: they must be exactly the canonical encoding of a valid manifest (so one
 * manifest has one byte string). ReleaseError with the reason otherwise.
 */
export function parseManifest(bytes: Uint8Array): ReleaseManifest {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('parseManifest: bytes must be a Uint8Array');
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch {
    throw new ReleaseError('the release manifest is not UTF-8 JSON');
  }
  if (!o || typeof o !== 'object' || o.format !== RELEASE_FORMAT) throw new ReleaseError(`the release manifest's format is not "${RELEASE_FORMAT}"`);
  const l = (o.lora ?? {}) as Record<string, unknown>;
  const m = {
    program: o.program,
    sequence: o.sequence,
    kind: o.kind,
    version: o.version,
    round: o.round,
    baseSha256: o.base_sha256,
    adapterSha256: o.adapter_sha256,
    adapterBytes: o.adapter_bytes,
    lora: { rank: l.rank, alpha: l.alpha, targets: l.targets, dropout: l.dropout, freezeA: l.freeze_a, seed: l.seed },
    epsilon: o.epsilon,
    delta: o.delta,
    aggregation: o.aggregation,
    timestampMs: o.timestamp_ms,
  } as unknown as ReleaseManifest;
  const problem = manifestProblem(m);
  if (problem) throw new ReleaseError(`the release manifest is invalid: ${problem}`);
  if (Buffer.compare(Buffer.from(encodeManifest(m)), Buffer.from(bytes)) !== 0) throw new ReleaseError('the release manifest is not in canonical form (key order, spacing or number format differ)');
  return m;
}

/** Ed25519 signature of manifest bytes by a release key (64-byte tweetnacl secret key). */
export function signManifest(manifest: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (!(manifest instanceof Uint8Array)) throw new TypeError('signManifest: manifest must be a Uint8Array');
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== nacl.sign.secretKeyLength) throw new TypeError('signManifest: secretKey must be a 64-byte Ed25519 secret key');
  return nacl.sign.detached(manifest, secretKey);
}

/** True when `signature` is the Ed25519 signature of `message` by `publicKey` (node:crypto; never throws). */
export function ed25519Verifies(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64 || !(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  try {
    const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    return cryptoVerify(null, message, key, signature);
  } catch {
    return false;
  }
}

const short = (hex: string): string => `${hex.slice(0, 12)}…`;
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** What a verifier expects of a release besides its signature. */
export interface ReleaseExpectation {
  /** The program the device belongs to. */
  readonly program?: string;
  /** The identity of the base the device holds. */
  readonly baseSha256?: string;
  /** The adapter file's bytes (their SHA-256 and length must be the manifest's). */
  readonly adapter?: Uint8Array;
}

/**
 * Verify a release: the signature over the manifest bytes by `publicKey`, then the manifest's
 * form, then what `expect` names (program, base, adapter bytes). Returns the manifest;
 * ReleaseError with one sentence otherwise.
 */
export function verifyRelease(release: SignedRelease, publicKey: Uint8Array, expect: ReleaseExpectation = {}): ReleaseManifest {
  if (!release || !(release.manifest instanceof Uint8Array) || !(release.signature instanceof Uint8Array)) throw new TypeError('verifyRelease: release must hold manifest and signature bytes');
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new TypeError('verifyRelease: publicKey must be a 32-byte Ed25519 public key');
  if (release.manifest.length === 0) throw new ReleaseError('the adapter comes without a release manifest');
  if (release.signature.length === 0) throw new ReleaseError('the release manifest is not signed');
  if (!ed25519Verifies(release.manifest, release.signature, publicKey)) throw new ReleaseError(`the release manifest's signature does not verify with the release key ${short(hex(publicKey))}`);
  const m = parseManifest(release.manifest);
  if (expect.program !== undefined && m.program !== expect.program) throw new ReleaseError(`the release is for program "${m.program}", not "${expect.program}"`);
  if (expect.baseSha256 !== undefined && m.baseSha256 !== expect.baseSha256) throw new ReleaseError(`release ${m.sequence} (version ${m.version}) is for base ${short(m.baseSha256)}, not this device's base ${short(expect.baseSha256)}`);
  if (expect.adapter !== undefined) {
    const got = createHash('sha256').update(expect.adapter).digest('hex');
    if (expect.adapter.length !== m.adapterBytes || got !== m.adapterSha256) {
      throw new ReleaseError(`the adapter's bytes (${expect.adapter.length} bytes, SHA-256 ${short(got)}) are not the ${m.adapterBytes} bytes with SHA-256 ${short(m.adapterSha256)} that release ${m.sequence} names`);
    }
  }
  return m;
}

/** The text of a `.release.json` file: `{"manifest":"<the manifest bytes as a string>","signature":"<hex>"}` and a newline. */
export function releaseFileText(r: SignedRelease): string {
  if (!r || !(r.manifest instanceof Uint8Array) || !(r.signature instanceof Uint8Array)) throw new TypeError('releaseFileText: release must hold manifest and signature bytes');
  return `${JSON.stringify({ manifest: new TextDecoder().decode(r.manifest), signature: hex(r.signature) })}\n`;
}

/** Read a `.release.json` file's text (`where` names it in the sentence); ReleaseError if malformed. The signature may be empty (unsigned). */
export function parseReleaseFile(text: string, where = 'the release file'): SignedRelease {
  if (typeof text !== 'string') throw new TypeError('parseReleaseFile: text must be a string');
  let o: { manifest?: unknown; signature?: unknown };
  try {
    o = JSON.parse(text) as typeof o;
  } catch {
    throw new ReleaseError(`${where} is not JSON`);
  }
  if (!o || typeof o.manifest !== 'string' || typeof o.signature !== 'string') throw new ReleaseError(`${where} must be {"manifest": "<manifest JSON as a string>", "signature": "<hex>"}`);
  if (!/^([0-9a-f]{128})?$/.test(o.signature)) throw new ReleaseError(`${where}'s signature must be 128 lowercase hex characters (or empty while unsigned)`);
  return { manifest: new TextEncoder().encode(o.manifest), signature: Uint8Array.from(Buffer.from(o.signature, 'hex')) };
}

/** Read a release public key: 64 hex characters (surrounding whitespace ignored). ReleaseError otherwise. */
export function parsePublicKeyHex(text: string, where = 'the release key'): Uint8Array {
  const t = String(text).trim();
  if (!HEX64.test(t)) throw new ReleaseError(`${where} is not an Ed25519 public key (64 lowercase hex characters)`);
  return Uint8Array.from(Buffer.from(t, 'hex'));
}
