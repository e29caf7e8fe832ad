/**
 * The transport-security flags of `fedtune coordinator` (--tls-cert, --tls-key, --client-ca,
 * --insecure) and `fedtune device` (--ca, --cert, --key, --insecure): TLS unless --insecure is
 * given explicitly, flag combinations checked, and every bad file one CliError sentence.
 */
import type * as grpc from '@grpc/grpc-js';
import { loadServerTls, TlsConfigError } from '../server/tls.js';
import { deviceCredentials } from '../client/tls.js';
import { CliError } from './args.js';

/** parseArgs options of the coordinator's transport flags. */
export const COORDINATOR_TLS_FLAGS = { 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'client-ca': { type: 'string' }, insecure: { type: 'boolean' } } as const;

/** parseArgs options of the device's transport flags. */
export const DEVICE_TLS_FLAGS = { ca: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, insecure: { type: 'boolean' } } as const;

/** Usage lines of the coordinator's transport flags. */
export const COORDINATOR_TLS_USAGE = `--tls-cert FILE --tls-key FILE [--client-ca FILE (mutual TLS: devices need a certificate it signed)] | --insecure (plaintext)`;

/** Usage lines of the device's transport flags. */
export const DEVICE_TLS_USAGE = `[--ca FILE (CA of the coordinator's certificate; default: public roots)] [--cert FILE --key FILE (mutual TLS)] | --insecure (plaintext)`;

type Values = Record<string, string | boolean | undefined>;
type Log = (msg: string, fields?: Record<string, unknown>) => void;

function given(v: Values, names: readonly string[]): string[] {
  return names.filter((n) => v[n] !== undefined).map((n) => `--${n}`);
}

/**
 * The coordinator's server credentials from its flags; logs what it serves with (a warning for
 * plaintext or a certificate near expiry). CliError for a missing or contradictory flag or a bad file.
 */
export function coordinatorCredentials(v: Values, log: Log): grpc.ServerCredentials | undefined {
  const tls = given(v, ['tls-cert', 'tls-key', 'client-ca']);
  if (v.insecure === true) {
    if (tls.length > 0) throw new CliError(`--insecure (plaintext) cannot be combined with ${tls.join(', ')}`);
    log('serving plaintext (--insecure): anyone on the network path can read and alter traffic and impersonate this coordinator; use --tls-cert and --tls-key outside a trusted network', { level: 'warn', tls: 'none' });
    return undefined;
  }
  if (v['tls-cert'] === undefined && v['tls-key'] === undefined) {
    throw new CliError(`TLS is required: pass --tls-cert FILE --tls-key FILE${v['client-ca'] !== undefined ? ' with --client-ca' : ''} (fedtune keys tls makes a trial CA and certificate), or --insecure to serve plaintext`);
  }
  if (v['tls-cert'] === undefined || v['tls-key'] === undefined) throw new CliError('--tls-cert and --tls-key go together: a server certificate and its private key');
  try {
    const t = loadServerTls({ certFile: v['tls-cert'] as string, keyFile: v['tls-key'] as string, clientCaFile: v['client-ca'] as string | undefined });
    log(t.summary.mutual ? 'serving mutual TLS: devices must present a certificate the client CA signed' : 'serving TLS', { tls: t.summary.mutual ? 'mutual' : 'server', ...t.summary });
    for (const w of t.warnings) log(w, { level: 'warn' });
    return t.credentials;
  } catch (e) {
    if (e instanceof TlsConfigError) throw new CliError(e.message);
    throw e;
  }
}

/**
 * A device's channel credentials from its flags: TLS (the --ca CA, or public roots; --cert/--key
 * for mutual TLS), or plaintext with --insecure (with a warning through `warn`).
 */
export function deviceChannelCredentials(v: Values, warn: (msg: string) => void): grpc.ChannelCredentials | undefined {
  const tls = given(v, ['ca', 'cert', 'key']);
  if (v.insecure === true) {
    if (tls.length > 0) throw new CliError(`--insecure (plaintext) cannot be combined with ${tls.join(', ')}`);
    warn('connecting in plaintext (--insecure): updates stay sealed end to end, but the coordinator is not authenticated and the enrolment token travels in the clear');
    return undefined;
  }
  if ((v.cert === undefined) !== (v.key === undefined)) throw new CliError('--cert and --key go together: a device certificate and its private key');
  try {
    return deviceCredentials({ caFile: v.ca as string | undefined, certFile: v.cert as string | undefined, keyFile: v.key as string | undefined });
  } catch (e) {
    if (e instanceof TlsConfigError) throw new CliError(e.message);
    throw e;
  }
}
