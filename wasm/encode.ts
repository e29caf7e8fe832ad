/**
 * The few encoders a hand-assembled WebAssembly module needs (the binary format's LEB128
 * integers, sections and vectors), shared by the modules fedtune writes in bytes: streaming
 * FedAvg's fold (aggregators/fedavg.ts), Poly1305 (privacy/poly1305-wasm.ts) and SecAgg's mask
 * sum (privacy/secagg/mask-sum.ts).
 */

/** Unsigned LEB128 of a non-negative integer below 2³². */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (e.g. the immediate of i64.const) of an integer within ±2⁵³. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n = Math.floor(n / 128);
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** Bytes prefixed by their length (a function body, a name). */
export const sized = (bytes: number[]): number[] => [...leb(bytes.length), ...bytes];

/** Section `id` holding `body`. */
export const section = (id: number, body: number[]): number[] => [id, ...sized(body)];

/** A vector: the item count, then the items. */
export const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
