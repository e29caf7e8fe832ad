// Original file: proto/fedtune.proto


export interface EnrollRequest {
  'programId'?: (string);
  'enrolmentToken'?: (string);
  /**
   * Ed25519 public key (32 bytes) that signs this device's requests.
   */
  'signPublicKey'?: (Buffer | Uint8Array | string);
  /**
   * X25519 public key (32 bytes) for messages to the device.
   */
  'boxPublicKey'?: (Buffer | Uint8Array | string);
  'label'?: (string);
}

export interface EnrollRequest__Output {
  'programId': (string);
  'enrolmentToken': (string);
  /**
   * Ed25519 public key (32 bytes) that signs this device's requests.
   */
  'signPublicKey': (Buffer);
  /**
   * X25519 public key (32 bytes) for messages to the device.
   */
  'boxPublicKey': (Buffer);
  'label': (string);
}
