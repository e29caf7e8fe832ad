/**
 * The transport flags of `fedtune coordinator` and `fedtune device` in-process (cli/transport.ts):
 * which combinations are refused, and that each refusal is one CliError sentence; the processes
 * themselves are run in tls.spec.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError } from '../../cli/args.js';
import { coordinatorCredentials, deviceChannelCredentials } from '../../cli/transport.js';
import { issueCertificate } from '../../server/x509.js';

describe('cli/transport: --tls-cert/--tls-key/--client-ca/--insecure and --ca/--cert/--key/--insecure', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-transport-'));
  const ca = issueCertificate({ kind: 'ca', commonName: 'ca', days: 365 });
  const server = issueCertificate({ kind: 'server', commonName: 's', hosts: ['127.0.0.1'], days: 90, issuer: ca });
  const device = issueCertificate({ kind: 'client', commonName: 'd', days: 30, issuer: ca });
  const f: Record<string, string> = {};
  for (const [k, c] of Object.entries({ ca, server, device })) {
    writeFileSync((f[k] = join(dir, `${k}.pem`)), c.certPem);
    writeFileSync((f[`${k}Key`] = join(dir, `${k}-key.pem`)), c.keyPem);
  }
  const refused = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof CliError, String(e));
      assert.match(e.message, pattern);
      return true;
    });

  it('coordinator: plaintext only with --insecure (logged as a warning), never mixed with TLS flags', () => {
    const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
    const log = (msg: string, fields?: Record<string, unknown>) => logs.push({ msg, fields });
    refused(() => coordinatorCredentials({}, log), /^TLS is required: pass --tls-cert FILE --tls-key FILE \(fedtune keys tls makes a trial CA and certificate\), or --insecure to serve plaintext$/);
    refused(() => coordinatorCredentials({ 'client-ca': f.ca }, log), /^TLS is required: pass --tls-cert FILE --tls-key FILE with --client-ca/);
    refused(() => coordinatorCredentials({ insecure: true, 'tls-cert': f.server, 'tls-key': f.serverKey }, log), /^--insecure \(plaintext\) cannot be combined with --tls-cert, --tls-key$/);
    refused(() => coordinatorCredentials({ insecure: true, 'client-ca': f.ca }, log), /^--insecure \(plaintext\) cannot be combined with --client-ca$/);
    refused(() => coordinatorCredentials({ 'tls-cert': f.server }, log), /^--tls-cert and --tls-key go together/);
    refused(() => coordinatorCredentials({ 'tls-key': f.serverKey }, log), /^--tls-cert and --tls-key go together/);
    refused(() => coordinatorCredentials({ 'tls-cert': f.ca, 'tls-key': f.caKey }, log), /^the TLS certificate \S+ca\.pem is a CA certificate/);
    assert.equal(logs.length, 0);
    assert.equal(coordinatorCredentials({ insecure: true }, log), undefined);
    assert.equal(logs.at(-1)!.fields!.level, 'warn');
    assert.ok(coordinatorCredentials({ 'tls-cert': f.server, 'tls-key': f.serverKey, 'client-ca': f.ca }, log));
    assert.equal(logs.at(-1)!.fields!.tls, 'mutual');
    assert.equal(logs.at(-1)!.fields!.names, 'IP Address:127.0.0.1');
    assert.ok(coordinatorCredentials({ 'tls-cert': f.server, 'tls-key': f.serverKey }, log));
    assert.equal(logs.at(-1)!.fields!.tls, 'server');
  });

  it('device: TLS by default (public roots without --ca), plaintext only with --insecure, --cert with --key', () => {
    const warnings: string[] = [];
    const warn = (w: string) => warnings.push(w);
    refused(() => deviceChannelCredentials({ insecure: true, ca: f.ca }, warn), /^--insecure \(plaintext\) cannot be combined with --ca$/);
    refused(() => deviceChannelCredentials({ insecure: true, cert: f.device, key: f.deviceKey }, warn), /^--insecure \(plaintext\) cannot be combined with --cert, --key$/);
    refused(() => deviceChannelCredentials({ cert: f.device }, warn), /^--cert and --key go together/);
    refused(() => deviceChannelCredentials({ ca: f.ca, cert: f.device, key: f.serverKey }, warn), /^the private key \S+server-key\.pem does not match the certificate \S+device\.pem/);
    refused(() => deviceChannelCredentials({ ca: f.device }, warn), /^the CA certificate \S+device\.pem is not a CA certificate/);
    refused(() => deviceChannelCredentials({ ca: f.ca, cert: f.server, key: f.serverKey }, warn), /is not for clients \(its extendedKeyUsage lacks clientAuth\)/);
    assert.equal(warnings.length, 0);
    assert.equal(deviceChannelCredentials({ insecure: true }, warn), undefined);
    assert.match(warnings[0]!, /^connecting in plaintext \(--insecure\)/);
    assert.equal(deviceChannelCredentials({}, warn)!._isSecure(), true);
    assert.equal(deviceChannelCredentials({ ca: f.ca, cert: f.device, key: f.deviceKey }, warn)!._isSecure(), true);
  });
});
