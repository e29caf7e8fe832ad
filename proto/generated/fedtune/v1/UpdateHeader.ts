// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface UpdateHeader {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
  'roundId'?: (string);
  /**
   * Examples (token windows) trained on: the FedAvg weight, in [1, training.steps × batch_size].
   */
  'numExamples'?: (number | string | Long);
  /**
   * Size and SHA-256 (lowercase hex) of the sealed payload that follows in data chunks:
   * payload_bytes = 40 + the plaintext's size (24-byte nonce + 16-byte box tag; CONTRACT.md).
   */
  'payloadBytes'?: (number | string | Long);
  'payloadSha256'?: (string);
  /**
   * How the plaintext update is encoded: RoundWork.encoding ("f32", "q8", "q4", or "masked").
   */
  'encoding'?: (string);
  /**
   * For adaptive clipping: true if the update's norm was within clip_norm before clipping.
   */
  'unclipped'?: (boolean);
}

export interface UpdateHeader__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'programId': (string);
  'roundId': (string);
  /**
   * Examples (token windows) trained on: the FedAvg weight, in [1, training.steps × batch_size].
   */
  'numExamples': (number);
  /**
   * Size and SHA-256 (lowercase hex) of the sealed payload that follows in data chunks:
   * payload_bytes = 40 + the plaintext's size (24-byte nonce + 16-byte box tag; CONTRACT.md).
   */
  'payloadBytes': (number);
  'payloadSha256': (string);
  /**
   * How the plaintext update is encoded: RoundWork.encoding ("f32", "q8", "q4", or "masked").
   */
  'encoding': (string);
  /**
   * For adaptive clipping: true if the update's norm was within clip_norm before clipping.
   */
  'unclipped': (boolean);
}
