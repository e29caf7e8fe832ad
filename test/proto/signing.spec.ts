import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { authFor } from '../../client/index.js';
import { signedMessage, signEnrolment, enrolmentMessage, signKeyPair, signRequest } from '../../privacy/index.js';
import { loadProtos, protoDir, signingPayload, signingPayloadFromWire, WireFormatError } from '../../proto/index.js';
import { lastLengthDelimited, scanFields, withoutField } from '../../proto/wire-scan.js';
import { wireChecker } from '../../proto/wire-check.js';

/** The test vector of proto/CONTRACT.md ("Signing"), computed with Python's protobuf and PyNaCl. */
const V = {
  seed: Uint8Array.from({ length: 32 }, (_, i) => i),
  publicKey: '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8',
  deviceId: 'dev-000000000000000000000001',
  nonce: '00112233445566778899aabbccddeeff',
  timestampMs: 1_700_000_000_000,
  payload: '12026f7a',
  signed: 'fedtune.v1|/fedtune.v1.Coordinator/CheckIn|oz|dev-000000000000000000000001|00112233445566778899aabbccddeeff|1700000000000|e6478182a9ee75c44383ba872eaddefb299c11fbd1d4d73587e7811eb10a7367',
  signature: 'b4f8f97d79e6250952329550b2f81197abc7e9cea5e5004e8aa9c9d728b5e114f15017e33070c407b27659550dd40606f082d56633288c32453684261b73fc06',
  wire:
    '0a89010a1c6465762d303030303030303030303030303030303030303030303031122030303131323233333434353536363737383839396161626263636464656566661880d095ffbc312240b4f8f97d79e6250952329550b2f81197abc7e9cea5e5004e8aa9c9d728b5e114f15017e33070c407b27659550dd40606f082d56633288c32453684261b73fc0612026f7a',
  box: '358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254',
  enrolSigned:
    'fedtune.v1|/fedtune.v1.Coordinator/Enroll|oz|03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8|358072d6365880d1aeea329adf9121383851ed21a28e3b75e965d0d2cd166254|00112233445566778899aabbccddeeff|1700000000000',
  enrolSignature: '2964d1da4e578a5b7267e5ff1c1adb01fe6b1bfdb6c6c84202a9dc43ea2fa571c94dc0cf3702732beb636acc0e06ae39b01c5e0cf1d36ecb9b2c2fc41daf6300',
};
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const CHECK_IN = '/fedtune.v1.Coordinator/CheckIn';

describe('proto/signing: the signing rule', () => {
  const keys = signKeyPair(V.seed);

  it('reproduces the test vector: CheckIn{program_id "oz", adapter_version 0} as Python serialises it', () => {
    assert.equal(hex(keys.publicKey), V.publicKey);
    const wire = Buffer.from(V.wire, 'hex');
    assert.equal(hex(signingPayloadFromWire(CHECK_IN, wire)), V.payload, 'the wire bytes without auth');
    assert.equal(hex(signingPayload(CHECK_IN, { programId: 'oz' })), V.payload, 'this library, adapter_version unset');
    const scope = { method: CHECK_IN, programId: 'oz' };
    assert.equal(new TextDecoder().decode(signedMessage(scope, V.deviceId, V.nonce, V.timestampMs, Buffer.from(V.payload, 'hex'))), V.signed);
    assert.equal(hex(signRequest(scope, V.deviceId, Buffer.from(V.payload, 'hex'), keys, V.timestampMs, V.nonce).signature), V.signature);
    const auth = authFor('fedtune.v1.Coordinator/CheckIn', { programId: 'oz' }, V.deviceId, keys, { now: V.timestampMs, nonce: V.nonce });
    assert.equal(hex(auth.signature as Uint8Array), V.signature);
    const m = (loadProtos().definition['fedtune.v1.Coordinator'] as Record<string, { requestSerialize(v: unknown): Buffer }>).CheckIn;
    assert.equal(m.requestSerialize({ programId: 'oz', auth }).toString('hex'), V.wire, 'this library sends the same bytes');
  });

  it('reproduces the enrolment vector', () => {
    const box = Buffer.from(V.box, 'hex');
    assert.equal(new TextDecoder().decode(enrolmentMessage('oz', keys.publicKey, box, V.nonce, V.timestampMs)), V.enrolSigned);
    assert.equal(hex(signEnrolment('oz', keys, box, V.timestampMs, V.nonce).signature), V.enrolSignature);
  });

  it('proto/CONTRACT.md and fedtune.proto state the rule and these very vectors', () => {
    const doc = readFileSync(join(protoDir(), 'CONTRACT.md'), 'utf8');
    for (const v of [V.publicKey, V.payload, V.signed, V.signature, V.wire, V.box, V.enrolSignature]) assert.ok(doc.includes(v), `CONTRACT.md lacks ${v.slice(0, 40)}…`);
    const proto = readFileSync(join(protoDir(), 'fedtune.proto'), 'utf8');
    assert.ok(proto.includes('"fedtune.v1|<full method>|<program_id>|<device_id>|<nonce>|<timestamp_ms>|<hex sha256 of payload>"'));
  });

  it('the payload is what is sent: an explicit default is signed as sent, and auth never counts', () => {
    const withZero = signingPayload(CHECK_IN, { programId: 'oz', adapterVersion: 0 });
    assert.equal(hex(withZero), '12026f7a1800', 'protobufjs writes a present default: the signature covers exactly that');
    const a = signingPayload(CHECK_IN, { programId: 'oz', adapterVersion: 3, auth: { deviceId: 'x', nonce: 'aa', timestampMs: 1, signature: Buffer.alloc(64) } });
    assert.equal(hex(a), '12026f7a1803');
    // int64 above 2^53 signs as its bytes
    const big = Buffer.from('12026f7a18ffffffffffffffff7f', 'hex');
    assert.equal(hex(signingPayloadFromWire(CHECK_IN, big)), hex(big));
  });

  it('UploadUpdate signs the header message inside the first chunk, without its auth', () => {
    const m = (loadProtos().definition['fedtune.v1.Coordinator'] as Record<string, { requestSerialize(v: unknown): Buffer }>).UploadUpdate;
    const header = { programId: 'oz', roundId: 'oz.r1.a0', numExamples: 8, payloadBytes: 100, payloadSha256: 'ab'.repeat(32), encoding: 'f32' };
    const auth = authFor('fedtune.v1.Coordinator/UploadUpdate', { header }, 'dev-1', keys);
    const chunk = m.requestSerialize({ header: { ...header, auth } });
    const inner = lastLengthDelimited(chunk, 1)!;
    assert.deepEqual(signingPayloadFromWire('/fedtune.v1.Coordinator/UploadUpdate', chunk), withoutField(inner, 1));
    assert.deepEqual(signingPayload('/fedtune.v1.Coordinator/UploadUpdate', { header }), withoutField(inner, 1));
    assert.throws(() => signingPayloadFromWire('/fedtune.v1.Coordinator/UploadUpdate', Buffer.from('1203616263', 'hex')), /must start with its header/);
  });

  it('authFor needs a program for DownloadBlob, and refuses unknown methods', () => {
    assert.throws(() => authFor('fedtune.v1.Coordinator/DownloadBlob', { sha256: 'ab'.repeat(32) }, 'dev-1', keys), /programId/);
    assert.ok(authFor('fedtune.v1.Coordinator/DownloadBlob', { sha256: 'ab'.repeat(32) }, 'dev-1', keys, { programId: 'oz' }).signature);
    assert.throws(() => signingPayload('fedtune.v1.Coordinator/Nope', {}), /unknown signed method/);
  });

  it('the wire scanner refuses truncated messages and the checker names a field of the wrong wire type', () => {
    assert.throws(() => scanFields(Buffer.from('1205616263', 'hex')), (e: Error) => e instanceof WireFormatError && /claims 5 bytes/.test(e.message));
    assert.throws(() => scanFields(Buffer.from('18ff', 'hex')), /ends inside/);
    assert.throws(() => scanFields(Buffer.from('0b', 'hex')), /wire type 3/);
    const check = wireChecker(loadProtos().definition);
    assert.throws(() => check('fedtune.v1.CheckInRequest', Buffer.from('1a0161', 'hex')), /"adapter_version" \(number 3\) arrived with wire type 2/);
    assert.throws(() => check('fedtune.v1.CheckInRequest', Buffer.from('1202c328', 'hex')), /"program_id" is not valid UTF-8/);
    assert.throws(() => check('fedtune.v1.SecAggRequest', Buffer.from('3a050a03120161', 'hex')), /share_keys\.shares\.to/);
    check('fedtune.v1.SecAggUnmaskRequest', Buffer.from('0a03010203', 'hex')); // packed repeated int32
    check('fedtune.v1.CheckInRequest', Buffer.from('12026f7aa00605', 'hex')); // unknown field 100
  });
});
