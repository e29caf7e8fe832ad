// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface Auth {
  'deviceId'?: (string);
  /**
   * 16–64 random bytes, hex; used once.
   */
  'nonce'?: (string);
  'timestampMs'?: (number | string | Long);
  'signature'?: (Buffer | Uint8Array | string);
}

export interface Auth__Output {
  'deviceId': (string);
  /**
   * 16–64 random bytes, hex; used once.
   */
  'nonce': (string);
  'timestampMs': (number);
  'signature': (Buffer);
}
