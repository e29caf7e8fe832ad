/**
 * Issuing X.509 v3 certificates in-process (RFC 5280), for `fedtune keys tls`: a self-signed CA,
 * server certificates with subjectAltName, and client (device) certificates for mutual TLS.
 * Keys are ECDSA P-256 (node:crypto), signatures ecdsa-with-SHA256; the DER is written by
 * server/der.ts. Extensions: basicConstraints and keyUsage (critical), extKeyUsage, subject and
 * authority key identifiers, subjectAltName.
 */
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { bitString, boolean, childrenOf, context, integer, namedBits, octetString, oid, readElement, sequence, set, time, utf8String } from './der.js';

/** What a certificate is for. */
export type CertificateKind = 'ca' | 'server' | 'client';

/** The CA that signs a certificate: its PEM certificate and PEM private key. */
export interface Issuer {
  readonly certPem: string;
  readonly keyPem: string;
}

/** What {@link issueCertificate} makes. */
export interface CertificateRequest {
  readonly kind: CertificateKind;
  /** Subject common name. */
  readonly commonName: string;
  /** DNS names and IP addresses for subjectAltName (server certificates need at least one). */
  readonly hosts?: readonly string[];
  /** Days of validity from now (clamped to the issuer's own end of validity). */
  readonly days: number;
  /** Signing CA; omitted for a self-signed CA. */
  readonly issuer?: Issuer;
  /** Issue time. Default now. */
  readonly now?: Date;
}

/** A certificate and its new private key. */
export interface IssuedCertificate {
  readonly certPem: string;
  /** PKCS#8 PEM. Keep it private. */
  readonly keyPem: string;
  readonly cert: X509Certificate;
}

const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** keyUsage bit numbers (RFC 5280 4.2.1.3). */
const KEY_USAGE = { digitalSignature: 0, keyCertSign: 5, cRLSign: 6 } as const;

const DAY_MS = 86_400_000;
/** notBefore is set this far in the past, for clocks a little behind. */
const SKEW_MS = 5 * 60_000;

/** A DNS name (optionally one leading wildcard label) as accepted in subjectAltName. */
const DNS_NAME = /^(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;

/** True for a DNS name (one leading "*." allowed) or an IP address a subjectAltName can hold. */
export function isCertificateHost(host: string): boolean {
  return typeof host === 'string' && (isIP(host) !== 0 || DNS_NAME.test(host));
}

/** The 4 or 16 octets of an IPv4 or IPv6 address. */
function ipOctets(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const groups = (s: string | undefined): string[] => (s ? s.split(':') : []);
  let words = groups(head);
  let rest = groups(tail);
  // an embedded IPv4 tail (::ffff:1.2.3.4) is two 16-bit words
  const expandV4 = (w: string[]): string[] => w.flatMap((g) => (g.includes('.') ? (([a, b, c, d]) => [((a! << 8) | b!).toString(16), ((c! << 8) | d!).toString(16)])(g.split('.').map(Number)) : [g]));
  words = expandV4(words);
  rest = expandV4(rest);
  const all = tail === undefined ? words : [...words, ...Array<string>(8 - words.length - rest.length).fill('0'), ...rest];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** The subjectPublicKey bits of a P-256 key: the uncompressed point 04‖x‖y. */
function publicPoint(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new TypeError(`issueCertificate: keys must be ECDSA P-256, got ${jwk.kty}${jwk.crv ? ` ${jwk.crv}` : ''}`);
  return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
}

/** Key identifier: SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2, method 1). */
function keyId(key: KeyObject): Buffer {
  return createHash('sha1').update(publicPoint(key)).digest();
}

function name(commonName: string): Buffer {
  const rdn = (type: string, value: string): Buffer => set(sequence(oid(type), utf8String(value)));
  return sequence(rdn(OID.organization, 'fedtune'), rdn(OID.commonName, commonName));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

/** The DER subject Name of a certificate (the 6th field of its TBSCertificate), byte for byte. */
function subjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const tbs = childrenOf(der, readElement(der, 0))[0]!;
  const fields = childrenOf(der, tbs);
  const first = fields[0]!.tag === 0xa0 ? 1 : 0; // [0] version, when present
  const subject = fields[first + 4]!;
  return Buffer.from(der.subarray(subject.start, subject.end));
}

function pem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/**
 * Make a new P-256 key pair and a certificate for it: a self-signed CA (kind 'ca', no issuer),
 * or a server or client certificate signed by `issuer`.
 */
export function issueCertificate(req: CertificateRequest): IssuedCertificate {
  const kinds: readonly CertificateKind[] = ['ca', 'server', 'client'];
  if (!kinds.includes(req?.kind)) throw new TypeError(`issueCertificate: req.kind must be one of ${kinds.join(', ')}, got ${JSON.stringify(req?.kind)}`);
  if (typeof req.commonName !== 'string' || req.commonName.trim() === '' || req.commonName.length > 64) throw new TypeError('issueCertificate: req.commonName must be a non-empty string of at most 64 characters');
  if (!(Number.isInteger(req.days) && req.days >= 1 && req.days <= 36_500)) throw new RangeError(`issueCertificate: req.days must be an integer from 1 to 36500, got ${req.days}`);
  const hosts = req.hosts ?? [];
  for (const h of hosts) if (!isCertificateHost(h)) throw new TypeError(`issueCertificate: req.hosts: ${JSON.stringify(h)} is neither a DNS name nor an IP address`);
  if (req.kind === 'server' && hosts.length === 0) throw new TypeError('issueCertificate: req.hosts must name at least one DNS name or IP address for a server certificate');
  if ((req.kind === 'ca') !== (req.issuer === undefined)) throw new TypeError(`issueCertificate: req.issuer must be ${req.kind === 'ca' ? 'omitted for a self-signed CA' : 'given (the CA) for a server or client certificate'}`);

  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const now = req.now ?? new Date();
  const notBefore = new Date(Math.floor((now.getTime() - SKEW_MS) / 1000) * 1000);
  let notAfter = new Date(Math.floor((now.getTime() + req.days * DAY_MS) / 1000) * 1000);

  let issuerName = name(req.commonName);
  let signer: KeyObject = privateKey;
  let authorityKeyId = keyId(publicKey);
  if (req.issuer) {
    const ca = new X509Certificate(req.issuer.certPem);
    signer = createPrivateKey(req.issuer.keyPem);
    if (!ca.checkPrivateKey(signer)) throw new TypeError("issueCertificate: req.issuer.keyPem is not the private key of req.issuer.certPem");
    if (!ca.ca) throw new TypeError('issueCertificate: req.issuer.certPem is not a CA certificate (basicConstraints cA is not set)');
    issuerName = subjectDer(ca);
    authorityKeyId = keyId(ca.publicKey);
    const caEnd = new Date(ca.validTo);
    if (caEnd < notAfter) notAfter = caEnd;
  }

  const algorithm = sequence(oid(OID.ecdsaWithSha256));
  const spki = sequence(sequence(oid(OID.ecPublicKey), oid(OID.prime256v1)), bitString(publicPoint(publicKey)));
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  serial[0]! |= 0x01; // positive and never shortened

  const extensions: Buffer[] = [];
  if (req.kind === 'ca') {
    extensions.push(extension(OID.basicConstraints, true, sequence(boolean(true), integer(0))));
    extensions.push(extension(OID.keyUsage, true, namedBits([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])));
  } else {
    extensions.push(extension(OID.basicConstraints, true, sequence()));
    extensions.push(extension(OID.keyUsage, true, namedBits([KEY_USAGE.digitalSignature])));
    extensions.push(extension(OID.extKeyUsage, false, sequence(oid(req.kind === 'server' ? OID.serverAuth : OID.clientAuth))));
  }
  extensions.push(extension(OID.subjectKeyIdentifier, false, octetString(keyId(publicKey))));
  if (req.kind !== 'ca') extensions.push(extension(OID.authorityKeyIdentifier, false, sequence(context(0, authorityKeyId, false))));
  if (hosts.length > 0) {
    // GeneralName: dNSName [2] IA5String, iPAddress [7] OCTET STRING (IMPLICIT)
    const names = hosts.map((h) => (isIP(h) ? context(7, ipOctets(h), false) : context(2, Buffer.from(h.toLowerCase(), 'ascii'), false)));
    extensions.push(extension(OID.subjectAltName, false, sequence(...names)));
  }

  const tbs = sequence(
    context(0, integer(2), true), // version v3
    integer(serial),
    algorithm,
    issuerName,
    sequence(time(notBefore), time(notAfter)),
    name(req.commonName),
    spki,
    context(3, sequence(...extensions), true),
  );
  const signature = sign('sha256', tbs, { key: signer, dsaEncoding: 'der' });
  const der = sequence(tbs, algorithm, bitString(signature));
  const certPem = pem(der);
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: new X509Certificate(certPem) };
}
