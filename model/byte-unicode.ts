/**
 * GPT-2's reversible byte-to-unicode mapping used by byte-level BPE: every byte 0..255 maps to
 * one printable code point, so BPE can work on strings without whitespace or control bytes.
 */

/** Code point for each byte 0..255 (index = byte). */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  const out: string[] = new Array(256);
  for (let i = 0; i < bs.length; i++) out[bs[i]!] = String.fromCodePoint(cs[i]!);
  return out;
})();

/** Inverse of BYTE_TO_CHAR: mapped character → byte. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

/** Maps UTF-8 bytes to their byte-level string. */
export function bytesToUnicode(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += BYTE_TO_CHAR[b];
  return s;
}

/** Maps a byte-level string back to bytes; throws RangeError on a character outside the mapping. */
export function unicodeToBytes(s: string): Uint8Array {
  const out: number[] = [];
  for (const ch of s) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) throw new RangeError(`unicodeToBytes: character U+${ch.codePointAt(0)!.toString(16)} is not a byte-level symbol`);
    out.push(b);
  }
  return Uint8Array.from(out);
}
