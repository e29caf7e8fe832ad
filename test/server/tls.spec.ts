/**
 * TLS and mutual TLS between a real coordinator and real devices over loopback sockets, with
 * certificates from server/x509.ts: Node's OpenSSL does the verifying, so acceptance and refusal
 * here are independent of the code that made the certificates.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Device, deviceCredentials, TransportSecurityError, type DeviceEvent } from '../../client/index.js';
import { issueCertificate, loadServerTls, startCoordinator, TlsConfigError, type IssuedCertificate, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from './fixtures.js';

describe('transport security: TLS and mutual TLS over real sockets', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-tls-'));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  let ca: IssuedCertificate;
  let otherCa: IssuedCertificate;
  const f: Record<string, string> = {};
  let tls: RunningCoordinator;
  let mtls: RunningCoordinator;
  let plain: RunningCoordinator;
  let n = 0;

  before(async () => {
    ca = issueCertificate({ kind: 'ca', commonName: 'test CA', days: 30 });
    otherCa = issueCertificate({ kind: 'ca', commonName: 'someone else', days: 30 });
    const server = issueCertificate({ kind: 'server', commonName: 'coordinator', hosts: ['127.0.0.1', 'localhost'], days: 30, issuer: ca });
    const device = issueCertificate({ kind: 'client', commonName: 'device-1', days: 30, issuer: ca });
    const rogue = issueCertificate({ kind: 'client', commonName: 'rogue', days: 30, issuer: otherCa });
    const elsewhere = issueCertificate({ kind: 'server', commonName: 'elsewhere', hosts: ['fl.example.org'], days: 30, issuer: ca });
    for (const [k, c] of Object.entries({ ca, otherCa, server, device, rogue, elsewhere })) {
      f[k] = file(`${k}.pem`, c.certPem);
      f[`${k}Key`] = file(`${k}-key.pem`, c.keyPem);
    }
    const start = (credentials: grpc.ServerCredentials | undefined, name: string) => startCoordinator({ dataDir: join(dir, name), port: 0, programs: [smallProgram('oz')], credentials });
    tls = await start(loadServerTls({ certFile: f.server!, keyFile: f.serverKey! }).credentials, 'tls');
    mtls = await start(loadServerTls({ certFile: f.server!, keyFile: f.serverKey!, clientCaFile: f.ca! }).credentials, 'mtls');
    plain = await start(undefined, 'plain');
  });
  after(async () => {
    await Promise.all([tls, mtls, plain].map((r) => r?.shutdown(500)));
  });

  /** A device on `address` with these credentials; its retry events are collected. */
  function device(address: string, credentials: grpc.ChannelCredentials | undefined) {
    const d = new Device({ address, programId: 'oz', dataDir: join(dir, `device-${++n}`), enrolmentToken: TOKEN, text: ['once upon a time'], credentials, retry: { attempts: 3, baseMs: 50, maxMs: 100 }, rpcDeadlineMs: 5000 });
    const events: DeviceEvent[] = [];
    d.progress$.subscribe((e) => events.push(e));
    return { d, retries: () => events.filter((e) => e.kind === 'retry').length };
  }

  /** Enrol and fetch the program; the device is closed afterwards. */
  async function enrolAndFetch(address: string, credentials: grpc.ChannelCredentials | undefined): Promise<{ id: string; program: string }> {
    const { d } = device(address, credentials);
    try {
      const id = await d.enroll();
      const p = await d.program();
      return { id, program: p.programId };
    } finally {
      d.close();
    }
  }

  /** The error enrolment fails with (and how many retries it took). */
  async function refusal(address: string, credentials: grpc.ChannelCredentials | undefined): Promise<{ error: Error; retries: number }> {
    const { d, retries } = device(address, credentials);
    try {
      await d.enroll();
    } catch (e) {
      return { error: e as Error, retries: retries() };
    } finally {
      d.close();
    }
    assert.fail('enrolment succeeded where it must be refused');
  }

  it('a device trusting the CA enrols and fetches its program over TLS', async () => {
    const r = await enrolAndFetch(tls.address, deviceCredentials({ caFile: f.ca! }));
    assert.equal(r.program, 'oz');
    assert.ok(r.id.length > 0);
  });

  it('a device trusting another CA fails at once with a sentence telling it to pass --ca, not a raw OpenSSL string', async () => {
    const { error, retries } = await refusal(tls.address, deviceCredentials({ caFile: f.otherCa! }));
    assert.ok(error instanceof TransportSecurityError, String(error));
    assert.match(error.message, new RegExp(`^the coordinator at ${tls.address.replace(/\./g, '\\.')} presented a TLS certificate this device does not trust \\(unable to verify the first certificate\\): pass --ca`));
    assert.equal(retries, 0, 'an untrusted certificate is not retried');
    assert.equal((error as TransportSecurityError).cause.code, grpc.status.UNAVAILABLE);
  });

  it('the certificate must name the host the device connects to', async () => {
    const other = await startCoordinator({ dataDir: join(dir, 'elsewhere'), port: 0, programs: [smallProgram('oz')], credentials: loadServerTls({ certFile: f.elsewhere!, keyFile: f.elsewhereKey! }).credentials });
    try {
      const { error } = await refusal(other.address, deviceCredentials({ caFile: f.ca! }));
      assert.match(error.message, /^the coordinator's TLS certificate does not name 127\.0\.0\.1 \(.*\): connect with a host name the certificate lists/);
    } finally {
      await other.shutdown(500);
    }
    // the same coordinator by a name its certificate lists works
    const r = await enrolAndFetch(`localhost:${tls.port}`, deviceCredentials({ caFile: f.ca! }));
    assert.equal(r.program, 'oz');
  });

  it('mutual TLS: no device certificate is refused in the handshake, one the client CA signed is accepted, one from another CA is refused', async () => {
    const none = await refusal(mtls.address, deviceCredentials({ caFile: f.ca! }));
    assert.ok(none.error instanceof TransportSecurityError, String(none.error));
    assert.match(none.error.message, /requires a device certificate \(mutual TLS\): pass --cert and --key/);
    const ok = await enrolAndFetch(mtls.address, deviceCredentials({ caFile: f.ca!, certFile: f.device!, keyFile: f.deviceKey! }));
    assert.equal(ok.program, 'oz');
    const rogue = await refusal(mtls.address, deviceCredentials({ caFile: f.ca!, certFile: f.rogue!, keyFile: f.rogueKey! }));
    assert.equal((rogue.error as grpc.ServiceError).code ?? (rogue.error as TransportSecurityError).cause.code, grpc.status.UNAVAILABLE, String(rogue.error));
  });

  it('plaintext and TLS do not mix: a TLS device is told the coordinator does not speak TLS; a plaintext device cannot reach a TLS one', async () => {
    const tlsToPlain = await refusal(plain.address, deviceCredentials({ caFile: f.ca! }));
    assert.match(tlsToPlain.error.message, /does not speak TLS \(is it running with --insecure\?\)/);
    const plainToTls = await refusal(tls.address, undefined);
    assert.equal((plainToTls.error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
    // and plaintext on both ends still works (for --insecure)
    assert.equal((await enrolAndFetch(plain.address, undefined)).program, 'oz');
  });

  it('bad files are one sentence naming the file: a key of another certificate, swapped files, a CA as server certificate, an expired certificate, a missing file', () => {
    const refuses = (fn: () => unknown, pattern: RegExp) =>
      assert.throws(fn, (e: unknown) => {
        assert.ok(e instanceof TlsConfigError, String(e));
        assert.match(e.message, pattern);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
    refuses(() => loadServerTls({ certFile: f.server!, keyFile: f.deviceKey! }), new RegExp(`^the private key ${f.deviceKey!} does not match the certificate ${f.server!}`));
    refuses(() => deviceCredentials({ caFile: f.ca!, certFile: f.device!, keyFile: f.serverKey! }), /does not match the certificate/);
    refuses(() => loadServerTls({ certFile: f.serverKey!, keyFile: f.server! }), /is not a PEM certificate \(it holds a private key: certificate and key swapped\?\)/);
    refuses(() => loadServerTls({ certFile: f.ca!, keyFile: f.caKey! }), /is a CA certificate .*not a server or device certificate/);
    refuses(() => loadServerTls({ certFile: f.server!, keyFile: f.serverKey!, clientCaFile: f.device! }), /client CA .* is not a CA certificate/);
    refuses(() => loadServerTls({ certFile: f.device!, keyFile: f.deviceKey! }), /is not for servers \(its extendedKeyUsage lacks serverAuth\)/);
    refuses(() => loadServerTls({ certFile: join(dir, 'nope.pem'), keyFile: f.serverKey! }), /^cannot read the TLS certificate .*nope\.pem: no such file$/);
    const past = new Date(Date.now() - 400 * 86_400_000);
    const old = issueCertificate({ kind: 'server', commonName: 'old', hosts: ['127.0.0.1'], days: 10, issuer: ca, now: past });
    refuses(() => loadServerTls({ certFile: file('old.pem', old.certPem), keyFile: file('old-key.pem', old.keyPem) }), /^the TLS certificate .*old\.pem expired on \d{4}-/);
    // near expiry: served, with a warning
    const soon = issueCertificate({ kind: 'server', commonName: 'soon', hosts: ['127.0.0.1'], days: 5, issuer: ca });
    const s = loadServerTls({ certFile: file('soon.pem', soon.certPem), keyFile: file('soon-key.pem', soon.keyPem) });
    assert.equal(s.warnings.length, 1);
    assert.match(s.warnings[0]!, /expires in [45] days/);
  });
});
