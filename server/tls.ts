/**
 * The coordinator's transport security: TLS from a certificate and key file, and mutual TLS when a
 * client CA is given (every device must then present a certificate that CA signed, or its
 * handshake is refused before any RPC). Files are checked up front (proto/tls-files.ts) so a bad
 * file is one sentence at start-up, not an OpenSSL error at the first handshake.
 */
import * as grpc from '@grpc/grpc-js';
import { checkKeyPair, checkValidity, readCertificate, readPrivateKey, TlsConfigError } from '../proto/tls-files.js';

export { TlsConfigError } from '../proto/tls-files.js';

/** Certificates and keys of {@link loadServerTls}. */
export interface ServerTlsFiles {
  /** PEM server certificate (optionally followed by intermediates). */
  readonly certFile: string;
  /** Its unencrypted PEM private key. */
  readonly keyFile: string;
  /** PEM CA certificate(s) that sign device certificates: when given, devices must present one (mutual TLS). */
  readonly clientCaFile?: string;
}

/** What the coordinator serves with, and what to log about it. */
export interface ServerTls {
  readonly credentials: grpc.ServerCredentials;
  /** Facts for the start-up log line. */
  readonly summary: {
    readonly mutual: boolean;
    readonly subject: string;
    /** The certificate's subjectAltName entries ("DNS:…", "IP Address:…"). */
    readonly names: string;
    readonly validTo: string;
    readonly daysLeft: number;
    readonly clientCa?: string;
  };
  /** Sentences worth a warning in the log (a certificate close to expiry). */
  readonly warnings: readonly string[];
}

/** Days of validity left under which start-up warns. */
export const EXPIRY_WARNING_DAYS = 30;

/**
 * Read and check the coordinator's TLS files and make its server credentials: TLS, or mutual TLS
 * with `clientCaFile`. Throws {@link TlsConfigError} naming the file for an unreadable or non-PEM
 * file, a key that is not the certificate's, a CA where a server certificate belongs (or the
 * reverse), or a certificate outside its validity period.
 */
export function loadServerTls(files: ServerTlsFiles, now: Date = new Date()): ServerTls {
  if (typeof files?.certFile !== 'string' || typeof files.keyFile !== 'string') throw new TypeError('loadServerTls: files.certFile and files.keyFile must be paths');
  const cert = readCertificate(files.certFile, 'TLS certificate', 'leaf');
  const key = readPrivateKey(files.keyFile, 'TLS key');
  checkKeyPair(cert, key);
  const daysLeft = checkValidity(cert, 'TLS certificate', now);
  const warnings: string[] = [];
  if (daysLeft < EXPIRY_WARNING_DAYS) warnings.push(`the TLS certificate ${cert.path} expires in ${daysLeft} days (${new Date(cert.cert.validTo).toISOString()}); renew it and restart`);
  // node 20 names the extendedKeyUsage list keyUsage (later versions: extKeyUsage)
  const c = cert.cert as typeof cert.cert & { extKeyUsage?: string[] };
  const usage = c.extKeyUsage ?? c.keyUsage;
  if (usage && usage.length > 0 && !usage.includes('1.3.6.1.5.5.7.3.1')) throw new TlsConfigError(`the TLS certificate ${cert.path} is not for servers (its extendedKeyUsage lacks serverAuth): devices would refuse it`);
  let ca;
  if (files.clientCaFile !== undefined) {
    ca = readCertificate(files.clientCaFile, 'client CA', 'ca');
    checkValidity(ca, 'client CA', now);
  }
  const credentials = grpc.ServerCredentials.createSsl(ca ? ca.pem : null, [{ private_key: key.pem, cert_chain: cert.pem }], ca !== undefined);
  return {
    credentials,
    summary: {
      mutual: ca !== undefined,
      subject: cert.cert.subject.replace(/\n/g, ', '),
      names: cert.cert.subjectAltName ?? '',
      validTo: new Date(cert.cert.validTo).toISOString(),
      daysLeft,
      ...(ca ? { clientCa: ca.cert.subject.replace(/\n/g, ', ') } : {}),
    },
    warnings,
  };
}
