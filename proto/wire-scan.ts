/**
 * A tiny protobuf wire scanner: the fields of a serialised message as byte ranges, without a
 * schema. The signing rule uses it to remove the `auth` field from a request's bytes exactly as
 * they were sent, and the wire-type check walks messages with it.
 */
import { WireFormatError } from './wire-error.js';

/** Wire types of the protobuf encoding. */
export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

/** One field occurrence in a message's bytes. */
export interface WireField {
  readonly number: number;
  readonly wireType: number;
  /** Where the field starts (its tag) and ends in the message. */
  readonly start: number;
  readonly end: number;
  /** The value's bytes (for length-delimited fields, without the length prefix). */
  readonly valueStart: number;
}

/** Read a varint at `pos`; returns its value (as a bigint) and the position after it. */
export function readVarint(buf: Uint8Array, pos: number, what = 'a varint'): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new WireFormatError(`the message ends inside ${what}`);
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (!(b & 0x80)) return [v, pos];
  }
  throw new WireFormatError(`${what} is longer than 10 bytes`);
}

/** Every field occurrence of a message, in order; WireFormatError on a truncated or invalid encoding. */
export function scanFields(buf: Uint8Array): WireField[] {
  if (!(buf instanceof Uint8Array)) throw new TypeError('scanFields: buf must be a Uint8Array');
  const out: WireField[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, p] = readVarint(buf, pos, 'a field tag');
    pos = p;
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number < 1 || number > 536_870_911) throw new WireFormatError(`field number ${number} is outside 1…2^29−1`);
    const valueStart = pos;
    if (wireType === WIRE_VARINT) pos = readVarint(buf, pos, `field ${number}`)[1];
    else if (wireType === WIRE_I64) pos += 8;
    else if (wireType === WIRE_I32) pos += 4;
    else if (wireType === WIRE_LEN) {
      const [len, q] = readVarint(buf, pos, `the length of field ${number}`);
      if (len > BigInt(buf.length - q)) throw new WireFormatError(`field ${number} claims ${len} bytes, but only ${buf.length - q} follow`);
      out.push({ number, wireType, start, end: q + Number(len), valueStart: q });
      pos = q + Number(len);
      continue;
    } else throw new WireFormatError(`field ${number} has wire type ${wireType}, which proto3 does not use`);
    if (pos > buf.length) throw new WireFormatError(`the message ends inside field ${number}`);
    out.push({ number, wireType, start, end: pos, valueStart });
  }
  return out;
}

/** The message's bytes with every occurrence of field `number` removed (the rest unchanged, in order). */
export function withoutField(buf: Uint8Array, number: number): Uint8Array {
  const keep = scanFields(buf).filter((f) => f.number !== number);
  const out = new Uint8Array(keep.reduce((n, f) => n + f.end - f.start, 0));
  let at = 0;
  for (const f of keep) {
    out.set(buf.subarray(f.start, f.end), at);
    at += f.end - f.start;
  }
  return out;
}

/** The value bytes of the last occurrence of length-delimited field `number`, or undefined. */
export function lastLengthDelimited(buf: Uint8Array, number: number): Uint8Array | undefined {
  const f = scanFields(buf).filter((x) => x.number === number && x.wireType === WIRE_LEN).at(-1);
  return f ? buf.subarray(f.valueStart, f.end) : undefined;
}
