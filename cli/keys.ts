/**
 * `fedtune keys tls`: certificates for a trial deployment, made in-process (server/x509.ts; no
 * openssl): a self-signed CA (kept and reused from DIR on later runs), a server certificate for
 * the coordinator's host names, and device certificates for mutual TLS. Private keys are written
 * owner-only (0600).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { isCertificateHost, issueCertificate, type Issuer } from '../server/x509.js';
import { checkKeyPair, readCertificate, readPrivateKey, TlsConfigError } from '../proto/tls-files.js';
import { CliError, log, num, parse, required } from './args.js';

/** Usage text. */
export const KEYS_USAGE = `fedtune keys tls --out DIR [--host H …] [--client NAME …] [--days N (default 365)]
              (DIR/ca.pem + ca-key.pem, made once and reused; --host: server.pem + server-key.pem for those names/IPs;
               --client: client-NAME.pem + client-NAME-key.pem, device certificates for --client-ca)`;

/** Validity of a new CA: ten years, or longer if --days asks for it. */
const CA_DAYS = 3650;

const CLIENT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** What one written certificate is. */
interface Written {
  readonly cert: string;
  readonly key: string;
  readonly subject: string;
  readonly validTo: string;
  readonly names?: string;
}

function write(dir: string, base: string, certPem: string, keyPem: string): Written {
  const cert = join(dir, `${base}.pem`);
  const key = join(dir, `${base}-key.pem`);
  writeFileSync(key, keyPem, { mode: 0o600 });
  chmodSync(key, 0o600); // an existing file keeps its mode otherwise
  writeFileSync(cert, certPem, { mode: 0o644 });
  const x = new X509Certificate(certPem);
  return { cert, key, subject: x.subject.replace(/\n/g, ', '), validTo: new Date(x.validTo).toISOString(), ...(x.subjectAltName ? { names: x.subjectAltName } : {}) };
}

/** The CA in `dir`, or a new one. */
function caIn(dir: string, days: number): { issuer: Issuer; ca: Written & { created: boolean } } {
  const cert = join(dir, 'ca.pem');
  const key = join(dir, 'ca-key.pem');
  if (existsSync(cert) !== existsSync(key)) throw new CliError(`${dir} holds ${existsSync(cert) ? 'ca.pem but not ca-key.pem' : 'ca-key.pem but not ca.pem'}: restore the missing file, or use a new --out directory for a new CA`);
  if (existsSync(cert)) {
    try {
      const c = readCertificate(cert, 'CA certificate', 'ca');
      const k = readPrivateKey(key, 'CA key');
      checkKeyPair(c, k);
      if (new Date(c.cert.validTo) < new Date()) throw new TlsConfigError(`the CA certificate ${cert} has expired; use a new --out directory for a new CA`);
    } catch (e) {
      if (e instanceof TlsConfigError) throw new CliError(e.message);
      throw e;
    }
    const pem = readFileSync(cert, 'utf8');
    const x = new X509Certificate(pem);
    return { issuer: { certPem: pem, keyPem: readFileSync(key, 'utf8') }, ca: { cert, key, subject: x.subject.replace(/\n/g, ', '), validTo: new Date(x.validTo).toISOString(), created: false } };
  }
  const made = issueCertificate({ kind: 'ca', commonName: 'fedtune trial CA', days: Math.max(CA_DAYS, days) });
  return { issuer: made, ca: { ...write(dir, 'ca', made.certPem, made.keyPem), created: true } };
}

/** Run `fedtune keys tls …`; prints what it wrote as one JSON line. */
export async function keysCommand(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'tls') throw new CliError(`unknown keys subcommand ${JSON.stringify(sub ?? '')}; try: fedtune keys tls --out DIR --host H`);
  const v = parse(rest, { out: { type: 'string' }, host: { type: 'string', multiple: true }, client: { type: 'string', multiple: true }, days: { type: 'string' } } as const);
  const dir = required(v, 'out');
  const hosts = (v.host as unknown as string[] | undefined) ?? [];
  const clients = (v.client as unknown as string[] | undefined) ?? [];
  const days = num(v, 'days', { integer: true, min: 1, max: 36_500 }) ?? 365;
  if (hosts.length === 0 && clients.length === 0) throw new CliError('--host is required (the name or IP address devices connect to; repeat for more), or --client NAME for device certificates');
  for (const c of clients) if (!CLIENT_NAME.test(c)) throw new CliError(`--client ${JSON.stringify(c)} must be 1–64 letters, digits, dots, dashes or underscores (it names the files)`);
  for (const h of hosts) if (!isCertificateHost(h)) throw new CliError(`--host ${JSON.stringify(h)} is neither a DNS name nor an IP address`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { issuer, ca } = caIn(dir, days);
  const out: { ca: Written & { created: boolean }; server?: Written; clients: Written[] } = { ca, clients: [] };
  if (hosts.length > 0) {
    const server = issueCertificate({ kind: 'server', commonName: hosts[0]!, hosts, days, issuer });
    out.server = write(dir, 'server', server.certPem, server.keyPem);
  }
  for (const name of clients) {
    const c = issueCertificate({ kind: 'client', commonName: name, days, issuer });
    out.clients.push(write(dir, `client-${name}`, c.certPem, c.keyPem));
  }
  if (ca.created) log(`made a new CA in ${dir}: give devices ${ca.cert} (--ca, or --client-ca for the coordinator); keep ${ca.key} private`);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
