// Original file: proto/fedtune.proto


export interface EnrollResponse {
  'deviceId'?: (string);
  /**
   * X25519 public key (32 bytes) updates are encrypted to.
   */
  'programBoxPublicKey'?: (Buffer | Uint8Array | string);
}

export interface EnrollResponse__Output {
  'deviceId': (string);
  /**
   * X25519 public key (32 bytes) updates are encrypted to.
   */
  'programBoxPublicKey': (Buffer);
}
