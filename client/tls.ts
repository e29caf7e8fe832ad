/**
 * The device's transport security: channel credentials that trust a given CA (or the public roots
 * bundled with Node when none is given), with the device's own certificate and key for a
 * coordinator that demands mutual TLS; and the translation of a failed TLS handshake — which
 * gRPC reports as UNAVAILABLE with an OpenSSL string — into one sentence saying what is wrong and
 * what to pass. Such failures are not retried: a certificate does not become trusted by waiting.
 */
import * as grpc from '@grpc/grpc-js';
import { checkKeyPair, checkValidity, readCertificate, readPrivateKey, TlsConfigError } from '../proto/tls-files.js';

export { TlsConfigError } from '../proto/tls-files.js';

/** Files of {@link deviceCredentials}. */
export interface DeviceTlsFiles {
  /** PEM CA certificate(s) to trust for the coordinator's certificate. Default: Node's bundled public roots. */
  readonly caFile?: string;
  /** The device's PEM certificate, for mutual TLS (with `keyFile`). */
  readonly certFile?: string;
  /** Its unencrypted PEM private key. */
  readonly keyFile?: string;
}

/**
 * TLS channel credentials for a device; throws {@link TlsConfigError} naming the file for an
 * unreadable or wrong file, a key that is not the certificate's, or an expired certificate.
 */
export function deviceCredentials(files: DeviceTlsFiles = {}, now: Date = new Date()): grpc.ChannelCredentials {
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) throw new TypeError('deviceCredentials: files.certFile and files.keyFile go together (a client certificate and its key)');
  const ca = files.caFile === undefined ? undefined : readCertificate(files.caFile, 'CA certificate', 'ca');
  if (ca) checkValidity(ca, 'CA certificate', now);
  if (files.certFile === undefined || files.keyFile === undefined) return grpc.credentials.createSsl(ca?.pem ?? null);
  const cert = readCertificate(files.certFile, 'device certificate', 'leaf');
  const key = readPrivateKey(files.keyFile, 'device key');
  checkKeyPair(cert, key);
  checkValidity(cert, 'device certificate', now);
  const c = cert.cert as typeof cert.cert & { extKeyUsage?: string[] };
  const usage = c.extKeyUsage ?? c.keyUsage;
  if (usage && usage.length > 0 && !usage.includes('1.3.6.1.5.5.7.3.2')) throw new TlsConfigError(`the device certificate ${cert.path} is not for clients (its extendedKeyUsage lacks clientAuth): the coordinator would refuse it`);
  return grpc.credentials.createSsl(ca?.pem ?? null, key.pem, cert.pem);
}

/** A TLS handshake with the coordinator failed for a reason retrying will not fix. */
export class TransportSecurityError extends Error {
  override name = 'TransportSecurityError';
  constructor(
    message: string,
    /** The gRPC error it explains. */
    override readonly cause: grpc.ServiceError,
  ) {
    super(message);
  }
}

/** Handshake failures, by the OpenSSL / Node text gRPC passes on, and what they mean. */
const FAILURES: readonly { readonly test: RegExp; readonly say: (address: string, why: string) => string }[] = [
  {
    test: /unable to verify the first certificate|self[- ]signed certificate|unable to get (local )?issuer certificate|certificate signature failure|UNABLE_TO_VERIFY|SELF_SIGNED_CERT|CERT_SIGNATURE_FAILURE/i,
    say: (a, why) => `the coordinator at ${a} presented a TLS certificate this device does not trust (${why}): pass --ca with the CA certificate that signed it (the ca.pem of fedtune keys tls)`,
  },
  { test: /certificate has expired|CERT_HAS_EXPIRED/i, say: (a) => `the coordinator at ${a} presented an expired TLS certificate: its operator must renew it` },
  { test: /certificate is not yet valid|CERT_NOT_YET_VALID/i, say: (a) => `the coordinator at ${a} presented a TLS certificate that is not valid yet: check this machine's clock` },
  {
    test: /does not match certificate's altnames|ERR_TLS_CERT_ALTNAME_INVALID/i,
    say: (a, why) => `the coordinator's TLS certificate does not name ${a.replace(/:\d+$/, '')} (${why}): connect with a host name the certificate lists, or reissue it with --host for this name`,
  },
  { test: /alert certificate required|peer did not return a certificate/i, say: (a) => `the coordinator at ${a} requires a device certificate (mutual TLS): pass --cert and --key with a certificate its client CA signed` },
  {
    test: /alert (unknown ca|bad certificate|certificate unknown|unsupported certificate|certificate revoked|access denied)/i,
    say: (a, why) => `the coordinator at ${a} refused this device's certificate (${why}): it must be signed by the coordinator's client CA and not revoked`,
  },
  { test: /wrong version number|packet length too long|http request/i, say: (a) => `the coordinator at ${a} does not speak TLS (is it running with --insecure?): connect with --insecure only if you trust the network, or ask its operator to enable TLS` },
];

/** The short reason inside a gRPC handshake error ("unable to verify the first certificate"). */
function reason(details: string): string {
  const m = /Last error: (?:Error(?: \[[A-Z_]+\])?: )?(.*?)(?:\. Resolution note:|$)/s.exec(details);
  const text = (m?.[1] ?? details).replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:[a-z0-9_]+:/, '').replace(/:\.\.\/deps\/openssl.*$/s, '').trim();
  return text.replace(/\s+/g, ' ');
}

/**
 * When `e` is a gRPC error from a TLS handshake that failed for a lasting reason (an untrusted or
 * expired certificate, a name mismatch, a refused or missing device certificate, a plaintext
 * coordinator), the sentence that explains it; otherwise undefined.
 */
export function tlsFailure(e: unknown, address: string): TransportSecurityError | undefined {
  if (typeof e !== 'object' || e === null || (e as grpc.ServiceError).code !== grpc.status.UNAVAILABLE) return undefined;
  const details = String((e as grpc.ServiceError).details ?? '');
  const hit = FAILURES.find((f) => f.test.test(details));
  return hit ? new TransportSecurityError(hit.say(address, reason(details)), e as grpc.ServiceError) : undefined;
}
