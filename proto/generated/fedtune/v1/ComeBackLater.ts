// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface ComeBackLater {
  'retryAfterMs'?: (number | string | Long);
  'reason'?: (string);
  /**
   * True once the program has run all its rounds: there will be no more work.
   */
  'programComplete'?: (boolean);
}

export interface ComeBackLater__Output {
  'retryAfterMs': (number);
  'reason': (string);
  /**
   * True once the program has run all its rounds: there will be no more work.
   */
  'programComplete': (boolean);
}
