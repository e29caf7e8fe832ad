/**
 * Requests as they were sent: the coordinator's request deserializers are wrapped so each decoded
 * request keeps its exact wire bytes (the signing rule hashes them) and the outcome of the
 * wire-type check. A request that fails the check decodes as an empty message carrying the
 * WireFormatError; handlers call {@link requireWellFormed} first and answer INVALID_ARGUMENT.
 */
import type { PackageDefinition } from '@grpc/proto-loader';
import { WireFormatError } from './wire-error.js';
import { wireChecker } from './wire-check.js';

interface Raw {
  readonly bytes: Uint8Array;
  readonly error?: WireFormatError;
}

const RAW = new WeakMap<object, Raw>();

interface MethodLike {
  requestDeserialize(b: Buffer): unknown;
  requestType: { type: { name: string } };
}

/** Wrap the request deserializers of every method of `service` in place. */
export function keepRawRequests(definition: PackageDefinition, service: string): void {
  const svc = definition[service] as unknown as Record<string, MethodLike> | undefined;
  if (!svc) throw new RangeError(`keepRawRequests: no service "${service}" in the definition`);
  const check = wireChecker(definition);
  const pkg = service.slice(0, service.lastIndexOf('.'));
  for (const m of Object.values(svc)) {
    const decode = m.requestDeserialize.bind(m);
    const typeName = `${pkg}.${m.requestType.type.name}`;
    m.requestDeserialize = (b: Buffer): unknown => {
      let error: WireFormatError | undefined;
      let decoded: unknown;
      try {
        check(typeName, b);
        decoded = decode(b);
      } catch (e) {
        error = e instanceof WireFormatError ? e : new WireFormatError(`the request could not be decoded: ${(e as Error).message}`);
        decoded = decode(Buffer.alloc(0));
      }
      if (decoded && typeof decoded === 'object') RAW.set(decoded, { bytes: b, error });
      return decoded;
    };
  }
}

/** The exact bytes a decoded request arrived as, or undefined for an object that did not come off the wire. */
export function rawRequestBytes(request: object): Uint8Array | undefined {
  return RAW.get(request)?.bytes;
}

/** Throw the request's WireFormatError if its bytes failed the wire-type check. */
export function requireWellFormed(request: object): void {
  const e = RAW.get(request)?.error;
  if (e) throw e;
}
