/**
 * A small ASN.1 DER writer (ITU-T X.690): just the types an X.509 v3 certificate needs —
 * SEQUENCE, SET, INTEGER, BOOLEAN, OBJECT IDENTIFIER, OCTET STRING, BIT STRING, UTF8String,
 * UTCTime/GeneralizedTime and context-specific tags. Every function returns the complete
 * tag-length-value encoding as a Buffer.
 */

/** Universal tag numbers used here. */
const TAG = { boolean: 0x01, integer: 0x02, bitString: 0x03, octetString: 0x04, oid: 0x06, utf8: 0x0c, utcTime: 0x17, generalizedTime: 0x18, sequence: 0x30, set: 0x31 } as const;

/** Definite-form length octets (X.690 8.1.3): short form below 128, else long form. */
function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** Tag, length, value. `tag` is the whole identifier octet. */
export function tlv(tag: number, value: Uint8Array): Buffer {
  if (!Number.isInteger(tag) || tag < 0 || tag > 0xff) throw new RangeError(`tlv: tag must be one identifier octet (0–255), got ${tag}`);
  return Buffer.concat([Buffer.from([tag]), lengthOctets(value.length), value]);
}

/** SEQUENCE of already encoded elements. */
export function sequence(...items: Uint8Array[]): Buffer {
  return tlv(TAG.sequence, Buffer.concat(items));
}

/** SET OF already encoded elements, sorted as DER requires (X.690 11.6). */
export function set(...items: Uint8Array[]): Buffer {
  const sorted = items.map((i) => Buffer.from(i)).sort(Buffer.compare);
  return tlv(TAG.set, Buffer.concat(sorted));
}

/** BOOLEAN (DER: TRUE is 0xff). */
export function boolean(value: boolean): Buffer {
  return tlv(TAG.boolean, Buffer.from([value ? 0xff : 0x00]));
}

/**
 * INTEGER from a non-negative safe integer or an unsigned big-endian byte string: minimal
 * two's-complement octets (leading zeros dropped, one 0x00 added when the top bit is set).
 */
export function integer(value: number | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`integer: value must be a non-negative safe integer, got ${value}`);
    const b: number[] = [];
    for (let x = value; x > 0; x = Math.floor(x / 256)) b.unshift(x & 0xff);
    bytes = Buffer.from(b);
  } else {
    bytes = Buffer.from(value);
  }
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0) bytes = Buffer.from([0]);
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(TAG.integer, bytes);
}

/** OBJECT IDENTIFIER from dotted text ("1.2.840.10045.4.3.2"), base-128 arcs (X.690 8.19). */
export function oid(dotted: string): Buffer {
  if (!/^[0-2]\.\d+(\.\d+)*$/.test(dotted)) throw new RangeError(`oid: expected dotted decimal arcs like "2.5.4.3", got ${JSON.stringify(dotted)}`);
  const arcs = dotted.split('.').map(Number);
  if (arcs.some((a) => !Number.isSafeInteger(a)) || (arcs[0]! < 2 && arcs[1]! > 39)) throw new RangeError(`oid: ${dotted} has an arc out of range`);
  const out: number[] = [];
  const first = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  for (const arc of first) {
    const groups: number[] = [];
    for (let x = arc; ; x = Math.floor(x / 128)) {
      groups.unshift(x % 128);
      if (x < 128) break;
    }
    out.push(...groups.map((g, i) => (i < groups.length - 1 ? g | 0x80 : g)));
  }
  return tlv(TAG.oid, Buffer.from(out));
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Buffer {
  return tlv(TAG.octetString, bytes);
}

/** BIT STRING of whole bytes (no unused bits), e.g. a signature or a public key. */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(TAG.bitString, Buffer.concat([Buffer.from([0]), bytes]));
}

/** BIT STRING of named bits (e.g. keyUsage): trailing zero bits removed as DER requires (X.690 11.2.2). */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return tlv(TAG.bitString, Buffer.from([0]));
  const top = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(top / 8) + 1);
  for (const b of bits) {
    if (!Number.isInteger(b) || b < 0) throw new RangeError(`namedBits: bit indices must be non-negative integers, got ${b}`);
    bytes[Math.floor(b / 8)]! |= 0x80 >> b % 8;
  }
  const unused = 7 - (top % 8);
  return tlv(TAG.bitString, Buffer.concat([Buffer.from([unused]), bytes]));
}

/** UTF8String. */
export function utf8String(text: string): Buffer {
  return tlv(TAG.utf8, Buffer.from(text, 'utf8'));
}

/**
 * An X.509 Time (RFC 5280 4.1.2.5): UTCTime (YYMMDDHHMMSSZ) for years 1950–2049,
 * GeneralizedTime (YYYYMMDDHHMMSSZ) otherwise; whole seconds, UTC.
 */
export function time(date: Date): Buffer {
  const y = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || y < 0 || y > 9999) throw new RangeError(`time: date must be a valid date in years 0–9999, got ${String(date)}`);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const rest = `${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}Z`;
  return y >= 1950 && y < 2050 ? tlv(TAG.utcTime, Buffer.from(`${p(y % 100)}${rest}`, 'ascii')) : tlv(TAG.generalizedTime, Buffer.from(`${p(y, 4)}${rest}`, 'ascii'));
}

/** A context-specific tag [n]: constructed (EXPLICIT wrapping of encoded elements) or primitive (IMPLICIT raw bytes). */
export function context(n: number, value: Uint8Array, constructed: boolean): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new RangeError(`context: tag number must be 0–30, got ${n}`);
  return tlv(0x80 | (constructed ? 0x20 : 0) | n, value);
}

/** One element read back: its identifier octet and where its contents lie in the buffer. */
export interface DerElement {
  readonly tag: number;
  /** Offset of the identifier octet. */
  readonly start: number;
  /** Offset of the first contents octet. */
  readonly contentStart: number;
  /** Offset just past the element. */
  readonly end: number;
}

/**
 * Read the element at `offset` (definite lengths only, as DER has); RangeError when it runs past
 * the buffer. Enough to walk a certificate to the field wanted.
 */
export function readElement(buf: Uint8Array, offset = 0): DerElement {
  if (offset + 2 > buf.length) throw new RangeError(`readElement: no DER element at offset ${offset} (buffer of ${buf.length} bytes)`);
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let contentStart = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || contentStart + n > buf.length) throw new RangeError(`readElement: bad length octets at offset ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[contentStart + i]!;
    contentStart += n;
  }
  const end = contentStart + len;
  if (end > buf.length) throw new RangeError(`readElement: element at offset ${offset} runs past the buffer`);
  return { tag, start: offset, contentStart, end };
}

/** The elements directly inside a constructed element. */
export function childrenOf(buf: Uint8Array, parent: DerElement): DerElement[] {
  const out: DerElement[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const e = readElement(buf, at);
    if (e.end > parent.end) throw new RangeError(`childrenOf: element at offset ${at} runs past its parent`);
    out.push(e);
    at = e.end;
  }
  return out;
}
