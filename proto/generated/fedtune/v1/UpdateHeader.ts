// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface UpdateHeader {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
  'roundId'?: (string);
  /**
   * Examples (token windows) trained on: the FedAvg weight.
   */
  'numExamples'?: (number | string | Long);
  /**
   * Size and SHA-256 of the sealed payload that follows in data chunks.
   */
  'payloadBytes'?: (number | string | Long);
  'payloadSha256'?: (string);
  /**
   * How the plaintext update is encoded, e.g. "f32", "q8", "q4", "topk".
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
   * Examples (token windows) trained on: the FedAvg weight.
   */
  'numExamples': (number);
  /**
   * Size and SHA-256 of the sealed payload that follows in data chunks.
   */
  'payloadBytes': (number);
  'payloadSha256': (string);
  /**
   * How the plaintext update is encoded, e.g. "f32", "q8", "q4", "topk".
   */
  'encoding': (string);
  /**
   * For adaptive clipping: true if the update's norm was within clip_norm before clipping.
   */
  'unclipped': (boolean);
}
