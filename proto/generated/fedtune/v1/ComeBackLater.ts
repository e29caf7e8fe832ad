// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface ComeBackLater {
  'retryAfterMs'?: (number | string | Long);
  'reason'?: (string);
}

export interface ComeBackLater__Output {
  'retryAfterMs': (number);
  'reason': (string);
}
