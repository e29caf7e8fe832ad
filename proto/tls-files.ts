/**
 * The PEM files transport security is configured with — certificates, private keys, CA bundles —
 * read and checked before any socket opens, for the coordinator (server/tls.ts) and the device
 * (client/tls.ts) alike: every problem is one {@link TlsConfigError} sentence naming the file
 * (unreadable, not PEM, a CA where a leaf belongs, a key that does not match its certificate, an
 * expired certificate), never an OpenSSL string at handshake time.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';

/** A TLS file that cannot be used, said in one sentence naming the file. */
export class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/** A PEM certificate read from disk. */
export interface CertificateFile {
  readonly path: string;
  /** The file's bytes (all the certificates it holds, a chain or a bundle). */
  readonly pem: Buffer;
  /** Its first certificate. */
  readonly cert: X509Certificate;
}

function read(path: string, what: string): Buffer {
  if (typeof path !== 'string' || path === '') throw new TypeError(`readCertificate: the ${what} path must be a non-empty string`);
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TlsConfigError(`cannot read the ${what} ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message}`);
  }
}

/**
 * Read a PEM certificate file (`what` names it in errors: "TLS certificate", "client CA", …);
 * `role` 'ca' wants a CA certificate, 'leaf' an end-entity one.
 */
export function readCertificate(path: string, what: string, role: 'ca' | 'leaf'): CertificateFile {
  const pem = read(path, what);
  if (!pem.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
    const hint = pem.toString('latin1').includes('PRIVATE KEY-----') ? ' (it holds a private key: certificate and key swapped?)' : '';
    throw new TlsConfigError(`the ${what} ${path} is not a PEM certificate${hint}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch (e) {
    throw new TlsConfigError(`the ${what} ${path} is not a readable PEM certificate (${(e as Error).message})`);
  }
  if (role === 'leaf' && cert.ca) throw new TlsConfigError(`the ${what} ${path} is a CA certificate (${cert.subject.replace(/\n/g, ', ')}), not a server or device certificate signed by one`);
  if (role === 'ca' && !cert.ca) throw new TlsConfigError(`the ${what} ${path} is not a CA certificate (basicConstraints cA is not set): give the certificate of the CA that signs the certificates it should trust`);
  return { path, pem, cert };
}

/** Read an unencrypted PEM private key. */
export function readPrivateKey(path: string, what: string): { readonly path: string; readonly pem: Buffer; readonly key: KeyObject } {
  const pem = read(path, what);
  const text = pem.toString('latin1');
  if (text.includes('ENCRYPTED')) throw new TlsConfigError(`the ${what} ${path} is encrypted with a passphrase; give an unencrypted PEM key (and protect the file with its permissions)`);
  if (!/-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/.test(text)) {
    const hint = text.includes('-----BEGIN CERTIFICATE-----') ? ' (it holds a certificate: certificate and key swapped?)' : '';
    throw new TlsConfigError(`the ${what} ${path} is not a PEM private key${hint}`);
  }
  try {
    return { path, pem, key: createPrivateKey(pem) };
  } catch (e) {
    throw new TlsConfigError(`the ${what} ${path} is not a readable PEM private key (${(e as Error).message})`);
  }
}

/** Refuse a key that is not the certificate's own. */
export function checkKeyPair(cert: CertificateFile, key: { readonly path: string; readonly key: KeyObject }): void {
  if (!cert.cert.checkPrivateKey(key.key)) throw new TlsConfigError(`the private key ${key.path} does not match the certificate ${cert.path} (they are from different key pairs)`);
}

/** Refuse a certificate outside its validity period at `now`; else the days it has left. */
export function checkValidity(cert: CertificateFile, what: string, now: Date = new Date()): number {
  const from = new Date(cert.cert.validFrom);
  const to = new Date(cert.cert.validTo);
  if (now < from) throw new TlsConfigError(`the ${what} ${cert.path} is not valid until ${from.toISOString()} (check this machine's clock)`);
  if (now > to) throw new TlsConfigError(`the ${what} ${cert.path} expired on ${to.toISOString()}; issue a new one (fedtune keys tls)`);
  return Math.floor((to.getTime() - now.getTime()) / 86_400_000);
}
