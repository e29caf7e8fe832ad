// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface Auth {
  'deviceId'?: (string);
  /**
   * 16–64 random bytes as lowercase hex (32–128 characters); fresh for every request.
   */
  'nonce'?: (string);
  /**
   * Signing time, ms since the Unix epoch: within ±5 min of the coordinator's clock and not
   * before it (re)started.
   */
  'timestampMs'?: (number | string | Long);
  /**
   * Ed25519 by the enrolled sign_public_key over the signed string (see the top of this file).
   */
  'signature'?: (Buffer | Uint8Array | string);
}

export interface Auth__Output {
  'deviceId': (string);
  /**
   * 16–64 random bytes as lowercase hex (32–128 characters); fresh for every request.
   */
  'nonce': (string);
  /**
   * Signing time, ms since the Unix epoch: within ±5 min of the coordinator's clock and not
   * before it (re)started.
   */
  'timestampMs': (number);
  /**
   * Ed25519 by the enrolled sign_public_key over the signed string (see the top of this file).
   */
  'signature': (Buffer);
}
