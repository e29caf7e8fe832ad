// Original file: proto/fedtune.proto

import type { EnrolmentProof as _fedtune_v1_EnrolmentProof, EnrolmentProof__Output as _fedtune_v1_EnrolmentProof__Output } from '../../fedtune/v1/EnrolmentProof.js';

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
  /**
   * Proof that the caller holds the secret key of sign_public_key (see CONTRACT.md, "Enrolment").
   */
  'proof'?: (_fedtune_v1_EnrolmentProof | null);
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
  /**
   * Proof that the caller holds the secret key of sign_public_key (see CONTRACT.md, "Enrolment").
   */
  'proof': (_fedtune_v1_EnrolmentProof__Output | null);
}
