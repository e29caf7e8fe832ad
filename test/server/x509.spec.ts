/**
 * Certificates from server/x509.ts checked by two independent X.509 implementations: node:crypto's
 * X509Certificate (OpenSSL inside Node) and, when the binary exists, the openssl command
 * (`x509 -text`, `verify -x509_strict -purpose …`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueCertificate } from '../../server/x509.js';

const OPENSSL = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;

describe('server/x509: X.509 v3 certificates made in-process', () => {
  const now = new Date();
  const ca = issueCertificate({ kind: 'ca', commonName: 'fedtune trial CA', days: 3650, now });
  const server = issueCertificate({ kind: 'server', commonName: 'coord', hosts: ['127.0.0.1', 'localhost', 'fl.example.org', '::1', 'fe80::1:2'], days: 90, issuer: ca, now });
  const client = issueCertificate({ kind: 'client', commonName: 'device-7', days: 30, issuer: ca, now });
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-x509-'));
  const files = { ca: join(dir, 'ca.pem'), server: join(dir, 'server.pem'), client: join(dir, 'client.pem') };
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.server, server.certPem);
  writeFileSync(files.client, client.certPem);

  it('node:crypto parses them: the CA is a self-signed CA, leaves are signed by it and name their hosts', () => {
    const c = new X509Certificate(ca.certPem);
    assert.equal(c.ca, true);
    assert.ok(c.verify(c.publicKey), 'self-signed');
    assert.match(c.subject, /CN=fedtune trial CA/);
    const s = new X509Certificate(server.certPem);
    assert.equal(s.ca, false);
    assert.ok(s.checkIssued(c) && s.verify(c.publicKey));
    assert.equal(s.issuer, c.subject);
    assert.equal(s.checkHost('localhost'), 'localhost');
    assert.equal(s.checkHost('fl.example.org'), 'fl.example.org');
    assert.equal(s.checkHost('other.example.org'), undefined);
    assert.equal(s.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(s.checkIP('::1'), '::1');
    assert.equal(s.checkIP('10.0.0.1'), undefined);
    assert.ok(!s.verify(new X509Certificate(issueCertificate({ kind: 'ca', commonName: 'x', days: 1 }).certPem).publicKey), 'not signed by another CA');
    assert.ok(s.checkPrivateKey(createPrivateKey(server.keyPem)));
    assert.equal(s.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const cl = new X509Certificate(client.certPem);
    assert.ok(cl.checkIssued(c) && cl.verify(c.publicKey));
    assert.equal(cl.subjectAltName, undefined);
  });

  it('validity: from five minutes ago (clock skew) for the days asked, never past the CA', () => {
    const s = new X509Certificate(server.certPem);
    const from = new Date(s.validFrom).getTime();
    const to = new Date(s.validTo).getTime();
    assert.ok(Math.abs(from - (now.getTime() - 5 * 60_000)) < 2000, s.validFrom);
    assert.ok(Math.abs(to - (now.getTime() + 90 * 86_400_000)) < 2000, s.validTo);
    const shortCa = issueCertificate({ kind: 'ca', commonName: 'short', days: 10 });
    const leaf = issueCertificate({ kind: 'server', commonName: 'x', hosts: ['x.example'], days: 365, issuer: shortCa });
    assert.equal(leaf.cert.validTo, shortCa.cert.validTo);
    // serials differ and are positive
    assert.notEqual(s.serialNumber, new X509Certificate(client.certPem).serialNumber);
    assert.ok(/^[0-7]/.test(s.serialNumber));
  });

  it('openssl reads the extensions as RFC 5280 defines them', function () {
    if (!OPENSSL) this.skip();
    const text = (f: string) => spawnSync('openssl', ['x509', '-in', f, '-text', '-noout'], { encoding: 'utf8' }).stdout;
    const c = text(files.ca);
    assert.match(c, /Version: 3 \(0x2\)/);
    assert.match(c, /Signature Algorithm: ecdsa-with-SHA256/);
    assert.match(c, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(c, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(c, /X509v3 Subject Key Identifier/);
    const s = text(files.server);
    assert.match(s, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
    assert.match(s, /X509v3 Key Usage: critical\s+Digital Signature/);
    assert.match(s, /X509v3 Extended Key Usage:\s+TLS Web Server Authentication/);
    assert.match(s, /X509v3 Subject Alternative Name:\s+IP Address:127\.0\.0\.1, DNS:localhost, DNS:fl\.example\.org, IP Address:0:0:0:0:0:0:0:1, IP Address:FE80:0:0:0:0:0:1:2/);
    assert.match(s, /ASN1 OID: prime256v1/);
    // the authority key id of the leaf is the CA's subject key id
    const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(c)![1];
    assert.match(s, new RegExp(`Authority Key Identifier:\\s+(keyid:)?${ski}`));
    assert.match(text(files.client), /X509v3 Extended Key Usage:\s+TLS Web Client Authentication/);
  });

  it('openssl verifies the chain strictly, for the right purpose only', function () {
    if (!OPENSSL) this.skip();
    const verify = (purpose: string, f: string) => spawnSync('openssl', ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', files.ca, f], { encoding: 'utf8' });
    assert.equal(verify('sslserver', files.server).status, 0, verify('sslserver', files.server).stderr);
    assert.equal(verify('sslclient', files.client).status, 0, verify('sslclient', files.client).stderr);
    assert.notEqual(verify('sslclient', files.server).status, 0, 'a server certificate is not a client certificate');
    assert.notEqual(verify('sslserver', files.client).status, 0, 'a client certificate is not a server certificate');
  });

  it('misuse throws naming the argument', () => {
    assert.throws(() => issueCertificate({ kind: 'server', commonName: 'x', days: 1, issuer: ca }), /issueCertificate: req\.hosts must name at least one/);
    assert.throws(() => issueCertificate({ kind: 'server', commonName: 'x', hosts: ['bad host'], days: 1, issuer: ca }), /req\.hosts: "bad host" is neither a DNS name nor an IP address/);
    assert.throws(() => issueCertificate({ kind: 'client', commonName: 'x', days: 0, issuer: ca }), RangeError);
    assert.throws(() => issueCertificate({ kind: 'client', commonName: 'x', days: 1 }), /req\.issuer must be given/);
    assert.throws(() => issueCertificate({ kind: 'ca', commonName: 'x', days: 1, issuer: ca }), /req\.issuer must be omitted/);
    assert.throws(() => issueCertificate({ kind: 'client', commonName: 'x', days: 1, issuer: { certPem: ca.certPem, keyPem: client.keyPem } }), /req\.issuer\.keyPem is not the private key/);
    assert.throws(() => issueCertificate({ kind: 'client', commonName: 'x', days: 1, issuer: server }), /is not a CA certificate/);
    assert.throws(() => issueCertificate({ kind: 'root' as 'ca', commonName: 'x', days: 1 }), TypeError);
  });
});
