// Original file: proto/fedtune.proto


export interface EnrollResponse {
  'deviceId'?: (string);
  /**
   * X25519 public key (32 bytes) updates are encrypted to.
   */
  'programBoxPublicKey'?: (Buffer | Uint8Array | string);
  /**
   * The program's Ed25519 release key (32 bytes): every adapter release is signed by it
   * (CONTRACT.md, "Releases"). Pin it: a device never accepts another.
   */
  'releasePublicKey'?: (Buffer | Uint8Array | string);
}

export interface EnrollResponse__Output {
  'deviceId': (string);
  /**
   * X25519 public key (32 bytes) updates are encrypted to.
   */
  'programBoxPublicKey': (Buffer);
  /**
   * The program's Ed25519 release key (32 bytes): every adapter release is signed by it
   * (CONTRACT.md, "Releases"). Pin it: a device never accepts another.
   */
  'releasePublicKey': (Buffer);
}
