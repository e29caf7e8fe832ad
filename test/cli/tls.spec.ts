/**
 * The transport-security CLI as a user runs it (flag combinations in-process: transport.spec.ts): `fedtune keys tls` writes a CA and certificates;
 * `fedtune coordinator` refuses to serve plaintext without --insecure and refuses bad flag
 * combinations and files in one line; a real coordinator process serving mutual TLS refuses a
 * device process without a certificate or trusting another CA, and completes a round with one
 * that has the right files.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corpus, MODEL } from '../helpers.js';
import { startCoordinatorProcess, type CoordinatorProcess } from '../server/coordinator-process.js';
import { failsWith, fedtune, fedtuneJson } from './run-fedtune.js';

interface Written {
  cert: string;
  key: string;
  validTo: string;
  names?: string;
}
interface KeysOut {
  ca: Written & { created: boolean };
  server?: Written;
  clients: Written[];
}

describe('fedtune keys tls, coordinator --tls-cert/--client-ca/--insecure, device --ca/--cert/--key (real processes)', function () {
  this.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), 'fedtune-cli-tls-'));
  const keys = join(dir, 'keys');
  const otherKeys = join(dir, 'other-keys');
  const config = join(dir, 'program.json');
  const text = join(dir, 'local.txt');
  writeFileSync(text, corpus('tinystories-sample.txt').slice(0, 6000));
  writeFileSync(config, JSON.stringify({ programs: [{ id: 'oz', base: MODEL.bin, tokenizer: MODEL.tok, enrolmentToken: 'tls-token', lora: { rank: 2, targets: ['wq', 'wv'], seed: 3 }, training: { steps: 2, batchSize: 2, seqLen: 32 }, cohortSize: 1, minUpdates: 1, minContributors: 1, overSelect: 1, rounds: 1, retryDelayMs: 100 }] }));
  let first: KeysOut;
  let coord: CoordinatorProcess | undefined;

  after(() => {
    if (coord?.alive()) coord.child.kill('SIGKILL');
  });

  it('keys tls makes a CA, a server certificate for --host and device certificates; keys are owner-only; a second run reuses the CA', () => {
    first = fedtuneJson<KeysOut>('keys', 'tls', '--out', keys, '--host', '127.0.0.1', '--host', 'localhost', '--client', 'dev-1', '--days', '30');
    assert.equal(first.ca.created, true);
    const ca = new X509Certificate(readFileSync(first.ca.cert));
    const server = new X509Certificate(readFileSync(first.server!.cert));
    const dev = new X509Certificate(readFileSync(first.clients[0]!.cert));
    assert.ok(ca.ca && server.verify(ca.publicKey) && dev.verify(ca.publicKey));
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkHost('localhost'), 'localhost');
    assert.ok(Math.abs(new Date(server.validTo).getTime() - Date.now() - 30 * 86_400_000) < 60_000);
    for (const k of [first.ca.key, first.server!.key, first.clients[0]!.key]) assert.equal(statSync(k).mode & 0o777, 0o600, k);
    const again = fedtuneJson<KeysOut>('keys', 'tls', '--out', keys, '--client', 'dev-2');
    assert.equal(again.ca.created, false);
    assert.equal(again.server, undefined);
    assert.ok(new X509Certificate(readFileSync(again.clients[0]!.cert)).verify(ca.publicKey), 'signed by the same CA');
    fedtuneJson<KeysOut>('keys', 'tls', '--out', otherKeys, '--host', '127.0.0.1', '--client', 'dev-1');
    failsWith(fedtune('keys', 'tls', '--out', join(dir, 'none')), /^fedtune keys: --host is required/);
    failsWith(fedtune('keys', 'tls', '--out', join(dir, 'none'), '--host', 'not a host'), /^fedtune keys: --host "not a host" is neither a DNS name nor an IP address$/);
  });

  it('the coordinator will not serve plaintext without --insecure, nor start with a key that is not its certificate’s', () => {
    const base = ['coordinator', '--config', config, '--port', '0', '--data', join(dir, 'refused')];
    failsWith(fedtune(...base), /^fedtune coordinator: TLS is required: pass --tls-cert FILE --tls-key FILE \(fedtune keys tls makes a trial CA and certificate\), or --insecure to serve plaintext$/);
    failsWith(fedtune(...base, '--tls-cert', first.server!.cert, '--tls-key', first.clients[0]!.key), /^fedtune coordinator: the private key \S+client-dev-1-key\.pem does not match the certificate \S+server\.pem \(they are from different key pairs\)$/);
  });

  it('--insecure serves plaintext with a warning line in the log', async () => {
    const plain = await startCoordinatorProcess(config, join(dir, 'plain'), { transport: ['--insecure'] });
    try {
      const warn = plain.lines.find((l) => l.level === 'warn');
      assert.ok(warn, JSON.stringify(plain.lines));
      assert.match(warn.msg, /^serving plaintext \(--insecure\)/);
    } finally {
      plain.child.kill('SIGTERM');
      await plain.exited;
    }
  });

  it('mutual TLS between processes: a device without a certificate, or trusting another CA, is told why in one line; one with its certificate completes a round', async () => {
    coord = await startCoordinatorProcess(config, join(dir, 'coord'), { transport: ['--tls-cert', first.server!.cert, '--tls-key', first.server!.key, '--client-ca', first.ca.cert] });
    const serving = coord.lines.find((l) => l.tls === 'mutual');
    assert.ok(serving, JSON.stringify(coord.lines));
    const device = (name: string, ...flags: string[]) => fedtune('device', '--coordinator', coord!.address, '--program', 'oz', '--data', join(dir, name), '--token', 'tls-token', '--text', text, '--max-wait', '0.2', ...flags);
    failsWith(device('d-nocert', '--ca', first.ca.cert), new RegExp(`^fedtune device: the coordinator at ${coord.address.replace(/\./g, '\\.')} requires a device certificate \\(mutual TLS\\): pass --cert and --key`));
    failsWith(device('d-wrongca', '--ca', join(otherKeys, 'ca.pem'), '--cert', first.clients[0]!.cert, '--key', first.clients[0]!.key), /^fedtune device: the coordinator at \S+ presented a TLS certificate this device does not trust \((unable to verify the first certificate|self-signed certificate in certificate chain)\): pass --ca/);
    const ok = device('d-ok', '--ca', first.ca.cert, '--cert', first.clients[0]!.cert, '--key', first.clients[0]!.key);
    assert.equal(ok.code, 0, ok.stderr);
    const summary = JSON.parse(ok.stdout) as { updatesAccepted: number; reason: string };
    assert.equal(summary.updatesAccepted, 1, ok.stdout);
    assert.match(summary.reason, /completed/);
    coord.child.kill('SIGTERM');
    assert.equal(await coord.exited, 0, coord.stderr());
  });
});
