// Original file: proto/fedtune.proto


/**
 * A release manifest and the release key's Ed25519 signature over exactly these bytes
 * (canonical JSON, CONTRACT.md "Releases"). Verify the bytes as received, then parse them.
 */
export interface SignedRelease {
  'manifest'?: (Buffer | Uint8Array | string);
  'signature'?: (Buffer | Uint8Array | string);
}

/**
 * A release manifest and the release key's Ed25519 signature over exactly these bytes
 * (canonical JSON, CONTRACT.md "Releases"). Verify the bytes as received, then parse them.
 */
export interface SignedRelease__Output {
  'manifest': (Buffer);
  'signature': (Buffer);
}
