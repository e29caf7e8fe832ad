/**
 * Release manifests (proto/release.ts) against CONTRACT.md's test vector, checked by three
 * independent Ed25519 implementations (node:crypto inside verifyRelease, tweetnacl, and Python's
 * PyNaCl), and every refusal a verifier must make.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { encodeManifest, parseManifest, parseReleaseFile, ReleaseError, releaseFileText, signManifest, verifyRelease, type ReleaseManifest } from '../../proto/release.js';

const ROOT = process.cwd();
const PYTHON = process.env.FEDTUNE_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

/** The vector exactly as CONTRACT.md prints it. */
function contractVector(): { manifest: string; signature: string; publicKey: string } {
  const doc = readFileSync(join(ROOT, 'proto', 'CONTRACT.md'), 'utf8').split('## Releases')[1];
  const vector = doc.split('### Test vector')[1];
  const blocks = vector.split('```').filter((_, i) => i % 2 === 1).map((b) => b.trim());
  const publicKey = /public key\s+`([0-9a-f]{64})`/.exec(vector)?.[1] ?? '';
  return { manifest: blocks[0], signature: blocks[1], publicKey };
}

const SEED = Uint8Array.from({ length: 32 }, (_, i) => i);

/** The vector's manifest as a value (written from the table in CONTRACT.md, not from the bytes). */
const VECTOR: ReleaseManifest = {
  program: 'oz',
  sequence: 3,
  kind: 'version',
  version: 2,
  round: 2,
  baseSha256: '1'.repeat(64),
  adapterSha256: '2'.repeat(64),
  adapterBytes: 5136,
  lora: { rank: 4, alpha: 8, targets: ['wq', 'wv'], dropout: 0, freezeA: false, seed: 1 },
  epsilon: 1.25,
  delta: 1e-5,
  aggregation: 'fedavg',
  timestampMs: 1700000000000,
};

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const sentence = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ReleaseError, `expected a ReleaseError, got ${String(e)}`);
    return e.message;
  }
  assert.fail('expected a refusal');
};

describe('release manifests (proto/release.ts)', () => {
  it("CONTRACT.md's vector: tweetnacl's key from the seed, canonical bytes, and a signature tweetnacl and node:crypto verify", () => {
    const v = contractVector();
    const kp = nacl.sign.keyPair.fromSeed(SEED);
    assert.equal(Buffer.from(kp.publicKey).toString('hex'), v.publicKey);
    assert.equal(new TextDecoder().decode(encodeManifest(VECTOR)), v.manifest, 'encodeManifest follows the documented key order and number format');
    const sig = Uint8Array.from(Buffer.from(v.signature, 'hex'));
    assert.ok(nacl.sign.detached.verify(enc(v.manifest), sig, kp.publicKey), 'tweetnacl verifies the documented signature');
    assert.deepEqual(verifyRelease({ manifest: enc(v.manifest), signature: sig }, kp.publicKey, { program: 'oz', baseSha256: '1'.repeat(64) }), VECTOR);
    // Ed25519 is deterministic: signing the documented bytes gives the documented signature
    assert.equal(Buffer.from(signManifest(enc(v.manifest), kp.secretKey)).toString('hex'), v.signature);
  });

  it("PyNaCl (an independent implementation) signs CONTRACT.md's manifest to its signature, verifies it, and refuses a changed byte", function () {
    this.timeout(20_000);
    const v = contractVector();
    const py = `
import sys, json, nacl.signing, nacl.exceptions
m = sys.argv[1].encode(); sig = bytes.fromhex(sys.argv[2]); pub = bytes.fromhex(sys.argv[3])
sk = nacl.signing.SigningKey(bytes(range(32)))
assert sk.verify_key.encode() == pub, 'public key'
assert sk.sign(m).signature == sig, 'signature differs'
nacl.signing.VerifyKey(pub).verify(m, sig)
o = json.loads(m)
assert list(o) == ['format','program','sequence','kind','version','round','base_sha256','adapter_sha256','adapter_bytes','lora','epsilon','delta','aggregation','timestamp_ms'], list(o)
try:
    nacl.signing.VerifyKey(pub).verify(m.replace(b'"version":2', b'"version":3'), sig); print('forgery verified')
except nacl.exceptions.BadSignatureError:
    print('ok', o['version'], o['delta'])
`;
    const r = spawnSync(PYTHON, ['-c', py, v.manifest, v.signature, v.publicKey], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${PYTHON} with nacl failed (install python3-nacl): ${r.stderr ?? r.error}`);
    assert.equal(r.stdout.trim(), 'ok 2 1e-05');
  });

  it('refuses a manifest signed by another key, a changed byte, a non-canonical form, another program or base, and adapter bytes that are not the named ones', () => {
    const key = nacl.sign.keyPair.fromSeed(SEED);
    const other = nacl.sign.keyPair();
    const adapter = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 255);
    const m = { ...VECTOR, adapterSha256: createHash('sha256').update(adapter).digest('hex'), adapterBytes: adapter.length };
    const bytes = encodeManifest(m);
    const good = { manifest: bytes, signature: signManifest(bytes, key.secretKey) };
    assert.equal(verifyRelease(good, key.publicKey, { adapter }).version, 2);
    assert.match(sentence(() => verifyRelease({ manifest: bytes, signature: signManifest(bytes, other.secretKey) }, key.publicKey)), /signature does not verify with the release key 03a107bff3ce/);
    const flipped = Uint8Array.from(bytes);
    flipped[flipped.length - 3] ^= 1; // a digit of the timestamp
    assert.match(sentence(() => verifyRelease({ manifest: flipped, signature: good.signature }, key.publicKey)), /does not verify/);
    const spaced = enc(new TextDecoder().decode(bytes).replace('"version":2', '"version": 2'));
    assert.match(sentence(() => verifyRelease({ manifest: spaced, signature: signManifest(spaced, key.secretKey) }, key.publicKey)), /not in canonical form/);
    assert.match(sentence(() => verifyRelease(good, key.publicKey, { program: 'shakespeare' })), /for program "oz", not "shakespeare"/);
    assert.match(sentence(() => verifyRelease(good, key.publicKey, { baseSha256: 'f'.repeat(64) })), /is for base 111111111111…, not this device's base ffffffffffff…/);
    const tampered = Uint8Array.from(adapter);
    tampered[100] ^= 0x40;
    assert.match(sentence(() => verifyRelease(good, key.publicKey, { adapter: tampered })), /the adapter's bytes \(300 bytes, SHA-256 [0-9a-f]{12}…\) are not the 300 bytes/);
    assert.match(sentence(() => verifyRelease(good, key.publicKey, { adapter: adapter.subarray(0, 200) })), /\(200 bytes, .* are not the 300 bytes/);
    assert.match(sentence(() => verifyRelease({ manifest: bytes, signature: new Uint8Array(0) }, key.publicKey)), /not signed/);
  });

  it('a .release.json file round-trips, and parseManifest refuses what encodeManifest would never write', () => {
    const key = nacl.sign.keyPair.fromSeed(SEED);
    const bytes = encodeManifest(VECTOR);
    const r = { manifest: bytes, signature: signManifest(bytes, key.secretKey) };
    const back = parseReleaseFile(releaseFileText(r));
    assert.deepEqual(Buffer.from(back.manifest), Buffer.from(bytes));
    assert.deepEqual(Buffer.from(back.signature), Buffer.from(r.signature));
    assert.throws(() => parseManifest(enc('{"format":"other"}')), /format is not "fedtune-release-v1"/);
    assert.throws(() => parseManifest(enc(new TextDecoder().decode(bytes).replace('"sequence":3', '"sequence":0'))), /sequence must be a positive integer/);
    assert.throws(() => encodeManifest({ ...VECTOR, epsilon: Infinity }), RangeError);
  });
});
