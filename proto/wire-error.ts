/**
 * The error a malformed wire message raises (server/ turns it into INVALID_ARGUMENT with its
 * sentence), and the one helper every codec uses to copy a wire `bytes` field.
 */
/** A wire message that fails validation: becomes INVALID_ARGUMENT with this sentence. */
export class WireFormatError extends Error {
  override name = 'WireFormatError';
}

/** Bytes from a wire `bytes` field (a Buffer) as a plain Uint8Array copy. */
export function bytesFromWire(b: Uint8Array | null | undefined): Uint8Array {
  return b ? Uint8Array.from(b) : new Uint8Array(0);
}
