// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface WatchRoundsRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
  /**
   * Replay events of rounds after this one first (0 = from the start).
   */
  'afterRound'?: (number | string | Long);
}

export interface WatchRoundsRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'programId': (string);
  /**
   * Replay events of rounds after this one first (0 = from the start).
   */
  'afterRound': (number);
}
