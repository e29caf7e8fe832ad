/**
 * A hand-written protobuf writer and a raw gRPC client for contract tests: requests are built
 * byte by byte from the field numbers in proto/fedtune.proto (standard proto3 rules: field order,
 * defaults omitted) and signed exactly as the contract's signing rule says, independently of the
 * TypeScript client's serialisers and signers.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import nacl from 'tweetnacl';

/** Base-128 varint of a non-negative integer. */
export function varint(v: number | bigint): Buffer {
  let n = BigInt(v);
  if (n < 0n) n += 1n << 64n;
  const out: number[] = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) b |= 0x80;
    out.push(b);
  } while (n > 0n);
  return Buffer.from(out);
}

const tag = (no: number, wt: number): Buffer => varint((no << 3) | wt);
const ld = (no: number, b: Uint8Array): Buffer => Buffer.concat([tag(no, 2), varint(b.length), b]);

/** A string field (omitted when empty, as proto3 serialisers do). */
export const str = (no: number, s: string): Buffer => (s === '' ? Buffer.alloc(0) : ld(no, Buffer.from(s, 'utf8')));
/** A bytes field (omitted when empty). */
export const bytes = (no: number, b: Uint8Array): Buffer => (b.length === 0 ? Buffer.alloc(0) : ld(no, b));
/** A varint field (int32/int64/bool; omitted when 0). */
export const int = (no: number, v: number | bigint): Buffer => (BigInt(v) === 0n ? Buffer.alloc(0) : Buffer.concat([tag(no, 0), varint(v)]));
/** An embedded message field (always written, even when empty). */
export const msg = (no: number, ...parts: Buffer[]): Buffer => ld(no, Buffer.concat(parts));
/** A field with an explicit wire type and raw value bytes, e.g. a varint where a string belongs. */
export const rawField = (no: number, wt: number, value: Buffer): Buffer => Buffer.concat([tag(no, wt), value]);

/** The signed string of the contract, byte for byte. */
export function signedString(method: string, programId: string, deviceId: string, nonce: string, timestampMs: number | bigint, payload: Uint8Array): string {
  return `fedtune.v1|${method}|${programId}|${deviceId}|${nonce}|${timestampMs}|${createHash('sha256').update(payload).digest('hex')}`;
}

/** Auth (field 1) for a payload: the request's bytes without auth. */
export function auth(method: string, programId: string, deviceId: string, payload: Uint8Array, secretKey: Uint8Array, opts: { now?: number; nonce?: string } = {}): Buffer {
  const nonce = opts.nonce ?? randomBytes(16).toString('hex');
  const ts = opts.now ?? Date.now();
  const sig = nacl.sign.detached(Buffer.from(signedString(method, programId, deviceId, nonce, ts, payload), 'utf8'), secretKey);
  return msg(1, str(1, deviceId), str(2, nonce), int(3, ts), bytes(4, sig));
}

/** A signed request: auth then the payload (the payload's fields all have numbers > 1). */
export function signed(method: string, programId: string, deviceId: string, payload: Buffer, secretKey: Uint8Array, opts: { now?: number; nonce?: string } = {}): Buffer {
  return Buffer.concat([auth(method, programId, deviceId, payload, secretKey, opts), payload]);
}

/** The enrolment proof string. */
export function enrolmentString(programId: string, signPublicKey: Uint8Array, boxPublicKey: Uint8Array, nonce: string, timestampMs: number): string {
  return `fedtune.v1|/fedtune.v1.Coordinator/Enroll|${programId}|${Buffer.from(signPublicKey).toString('hex')}|${Buffer.from(boxPublicKey).toString('hex')}|${nonce}|${timestampMs}`;
}

/** An EnrollRequest with its proof of possession (EnrolmentProof, field 6). */
export function enrollRequest(programId: string, token: string, sign: nacl.SignKeyPair, boxPublicKey: Uint8Array, opts: { now?: number; nonce?: string; label?: string; proofKey?: Uint8Array } = {}): Buffer {
  const nonce = opts.nonce ?? randomBytes(16).toString('hex');
  const ts = opts.now ?? Date.now();
  const sig = nacl.sign.detached(Buffer.from(enrolmentString(programId, sign.publicKey, boxPublicKey, nonce, ts), 'utf8'), opts.proofKey ?? sign.secretKey);
  return Buffer.concat([str(1, programId), str(2, token), bytes(3, sign.publicKey), bytes(4, boxPublicKey), str(5, opts.label ?? ''), msg(6, str(1, nonce), int(2, ts), bytes(3, sig))]);
}

/** The outcome of a raw call. */
export interface RawResult {
  readonly code: grpc.status;
  readonly details: string;
  readonly messages: Buffer[];
}

const id = (b: Buffer): Buffer => b;

/** A gRPC client that sends and receives raw message bytes. */
export class RawClient {
  private readonly client: grpc.Client;
  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure());
  }

  /** A unary call of "/fedtune.v1.Coordinator/<method>". */
  unary(method: string, request: Buffer): Promise<RawResult> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(`/fedtune.v1.Coordinator/${method}`, id, id, request, { deadline: Date.now() + 10_000 }, (err, res) =>
        resolve(err ? { code: err.code, details: err.details, messages: [] } : { code: grpc.status.OK, details: '', messages: [res as Buffer] }),
      );
    });
  }

  /** A server-streaming call; collects every message until the status. */
  serverStream(method: string, request: Buffer, until?: (messages: Buffer[]) => boolean): Promise<RawResult> {
    return new Promise((resolve) => {
      const messages: Buffer[] = [];
      const call = this.client.makeServerStreamRequest(`/fedtune.v1.Coordinator/${method}`, id, id, request, { deadline: Date.now() + 20_000 });
      call.on('data', (m: Buffer) => {
        messages.push(m);
        if (until?.(messages)) {
          call.cancel();
          resolve({ code: grpc.status.OK, details: 'cancelled by the test', messages });
        }
      });
      call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details, messages }));
      call.on('end', () => resolve({ code: grpc.status.OK, details: '', messages }));
    });
  }

  /** A client-streaming call (UploadUpdate): the chunks as given. */
  clientStream(method: string, chunks: Buffer[]): Promise<RawResult> {
    return new Promise((resolve) => {
      const call = this.client.makeClientStreamRequest(`/fedtune.v1.Coordinator/${method}`, id, id, { deadline: Date.now() + 20_000 }, (err, res) =>
        resolve(err ? { code: err.code, details: err.details, messages: [] } : { code: grpc.status.OK, details: '', messages: [res as Buffer] }),
      );
      for (const c of chunks) call.write(c);
      call.end();
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Fields of a message as (number → last raw value): varints as bigint, length-delimited as Buffer. */
export function parseFields(b: Buffer): Map<number, bigint | Buffer> {
  const out = new Map<number, bigint | Buffer>();
  let pos = 0;
  const rv = (): bigint => {
    let v = 0n;
    for (let s = 0n; ; s += 7n) {
      const x = b[pos++];
      v |= BigInt(x & 0x7f) << s;
      if (!(x & 0x80)) return v;
    }
  };
  while (pos < b.length) {
    const t = Number(rv());
    const no = t >> 3;
    const wt = t & 7;
    if (wt === 0) out.set(no, rv());
    else if (wt === 2) {
      const n = Number(rv());
      out.set(no, b.subarray(pos, pos + n));
      pos += n;
    } else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else throw new Error(`parseFields: wire type ${wt}`);
  }
  return out;
}
