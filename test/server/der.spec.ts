/** The DER writer against encodings published in X.690, RFC 5280 and well-known certificate bytes. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bitString, boolean, childrenOf, context, integer, namedBits, octetString, oid, readElement, sequence, set, time, tlv, utf8String } from '../../server/der.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('server/der: ASN.1 DER writer', () => {
  it('lengths: short form below 128, long form with the fewest octets above (X.690 8.1.3)', () => {
    assert.equal(hex(tlv(0x04, Buffer.alloc(127))).slice(0, 4), '047f');
    assert.equal(hex(tlv(0x04, Buffer.alloc(128))).slice(0, 6), '048180');
    assert.equal(hex(tlv(0x04, Buffer.alloc(256))).slice(0, 8), '04820100');
    assert.equal(hex(tlv(0x04, Buffer.alloc(65_536))).slice(0, 10), '0483010000');
  });

  it('INTEGER: minimal two’s complement, a 0x00 before a set top bit (X.690 8.3)', () => {
    assert.equal(hex(integer(0)), '020100');
    assert.equal(hex(integer(127)), '02017f');
    assert.equal(hex(integer(128)), '02020080');
    assert.equal(hex(integer(256)), '02020100');
    assert.equal(hex(integer(2)), '020102'); // the v3 version number of every certificate
    assert.equal(hex(integer(Uint8Array.from([0, 0, 5]))), '020105');
    assert.equal(hex(integer(Uint8Array.from([0xff, 1]))), '020300ff01');
    assert.throws(() => integer(-1), /integer: value must be a non-negative safe integer/);
  });

  it('OBJECT IDENTIFIER: the published encodings of well-known OIDs', () => {
    assert.equal(hex(oid('1.2.840.113549')), '06062a864886f70d'); // X.690 / PKCS#1 arc
    assert.equal(hex(oid('2.5.4.3')), '0603550403'); // commonName
    assert.equal(hex(oid('1.2.840.10045.4.3.2')), '06082a8648ce3d040302'); // ecdsa-with-SHA256
    assert.equal(hex(oid('1.2.840.10045.3.1.7')), '06082a8648ce3d030107'); // prime256v1
    assert.equal(hex(oid('1.3.6.1.5.5.7.3.1')), '06082b06010505070301'); // id-kp-serverAuth
    assert.throws(() => oid('1.40.3'), RangeError);
    assert.throws(() => oid('x.1'), /oid: expected dotted decimal/);
  });

  it('BOOLEAN, OCTET STRING, UTF8String, BIT STRING, context tags', () => {
    assert.equal(hex(boolean(true)), '0101ff');
    assert.equal(hex(boolean(false)), '010100');
    assert.equal(hex(octetString(Uint8Array.from([1, 2]))), '04020102');
    assert.equal(hex(utf8String('é')), '0c02c3a9');
    assert.equal(hex(bitString(Uint8Array.from([0xab]))), '030200ab');
    assert.equal(hex(context(0, integer(2), true)), 'a003020102'); // [0] EXPLICIT version v3, as in every v3 certificate
    assert.equal(hex(context(2, Buffer.from('a'), false)), '820161'); // dNSName "a"
  });

  it('named bits drop trailing zero bits (X.690 11.2.2): the keyUsage bytes seen in real certificates', () => {
    assert.equal(hex(namedBits([0])), '03020780'); // digitalSignature
    assert.equal(hex(namedBits([5, 6])), '03020106'); // keyCertSign, cRLSign
    assert.equal(hex(namedBits([0, 2])), '030205a0'); // digitalSignature, keyEncipherment
    assert.equal(hex(namedBits([8])), '0303070080'); // decipherOnly: a second byte
  });

  it('Time: UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5)', () => {
    assert.equal(Buffer.from(time(new Date('2026-12-03T08:04:05.678Z'))).toString('latin1'), '\x17\x0d261203080405Z');
    assert.equal(Buffer.from(time(new Date('2049-12-31T23:59:59Z'))).toString('latin1'), '\x17\x0d491231235959Z');
    assert.equal(Buffer.from(time(new Date('2050-01-01T00:00:00Z'))).toString('latin1'), '\x18\x0f20500101000000Z');
    assert.equal(Buffer.from(time(new Date('1949-06-01T00:00:00Z'))).toString('latin1'), '\x18\x0f19490601000000Z');
  });

  it('SET OF is sorted by encoding (X.690 11.6), SEQUENCE keeps its order', () => {
    assert.equal(hex(set(integer(3), integer(1))), '3106020101020103');
    assert.equal(hex(sequence(integer(3), integer(1))), '3006020103020101');
  });

  it('readElement/childrenOf read back what was written, whatever the sizes (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 400 }), { maxLength: 6 }), (parts) => {
        const der = sequence(...parts.map((p) => octetString(p)));
        const top = readElement(der);
        assert.equal(top.tag, 0x30);
        assert.equal(top.end, der.length);
        const kids = childrenOf(der, top);
        assert.deepEqual(
          kids.map((k) => hex(der.subarray(k.contentStart, k.end))),
          parts.map((p) => hex(p)),
        );
      }),
      { numRuns: 100 },
    );
    assert.throws(() => readElement(Buffer.from([0x30, 0x05, 0x01])), /runs past the buffer/);
  });
});
