// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface EnrolmentProof {
  /**
   * 16–64 random bytes, lowercase hex; used once.
   */
  'nonce'?: (string);
  'timestampMs'?: (number | string | Long);
  /**
   * Ed25519 signature by sign_public_key over the UTF-8 string
   * "fedtune.v1|/fedtune.v1.Coordinator/Enroll|<program_id>|<hex sign_public_key>|<hex box_public_key>|<nonce>|<timestamp_ms>".
   */
  'signature'?: (Buffer | Uint8Array | string);
}

export interface EnrolmentProof__Output {
  /**
   * 16–64 random bytes, lowercase hex; used once.
   */
  'nonce': (string);
  'timestampMs': (number);
  /**
   * Ed25519 signature by sign_public_key over the UTF-8 string
   * "fedtune.v1|/fedtune.v1.Coordinator/Enroll|<program_id>|<hex sign_public_key>|<hex box_public_key>|<nonce>|<timestamp_ms>".
   */
  'signature': (Buffer);
}
