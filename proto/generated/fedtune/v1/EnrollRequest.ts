// Original file: proto/fedtune.proto

import type { EnrolmentProof as _fedtune_v1_EnrolmentProof, EnrolmentProof__Output as _fedtune_v1_EnrolmentProof__Output } from '../../fedtune/v1/EnrolmentProof.js';

export interface EnrollRequest {
  'programId'?: (string);
  'enrolmentToken'?: (string);
  /**
   * Ed25519 public key (32 bytes) that signs this device's requests: a canonical point of the
   * prime-order subgroup (all zeros and other small-order keys are INVALID_ARGUMENT).
   */
  'signPublicKey'?: (Buffer | Uint8Array | string);
  /**
   * X25519 public key (32 bytes): the device's side of the update seal (not of small order).
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
   * Ed25519 public key (32 bytes) that signs this device's requests: a canonical point of the
   * prime-order subgroup (all zeros and other small-order keys are INVALID_ARGUMENT).
   */
  'signPublicKey': (Buffer);
  /**
   * X25519 public key (32 bytes): the device's side of the update seal (not of small order).
   */
  'boxPublicKey': (Buffer);
  'label': (string);
  /**
   * Proof that the caller holds the secret key of sign_public_key (see CONTRACT.md, "Enrolment").
   */
  'proof': (_fedtune_v1_EnrolmentProof__Output | null);
}
