// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface SecAggParams {
  'roundId'?: (string);
  /**
   * Participant ids (small positive integers) fixed when the round's selection closes.
   */
  'ids'?: (number)[];
  /**
   * Neighbours per device and the Shamir threshold (k/2 < t ≤ k).
   */
  'k'?: (number);
  'threshold'?: (number);
  /**
   * Update length and the fixed-point scale of its encoding into Z_(2^32).
   */
  'length'?: (number);
  'scale'?: (number | string);
  'graphSeed'?: (number | string | Long);
  /**
   * Values are clamped to ±bound before encoding (the clip norm plus noise headroom).
   */
  'bound'?: (number | string);
}

export interface SecAggParams__Output {
  'roundId': (string);
  /**
   * Participant ids (small positive integers) fixed when the round's selection closes.
   */
  'ids': (number)[];
  /**
   * Neighbours per device and the Shamir threshold (k/2 < t ≤ k).
   */
  'k': (number);
  'threshold': (number);
  /**
   * Update length and the fixed-point scale of its encoding into Z_(2^32).
   */
  'length': (number);
  'scale': (number);
  'graphSeed': (number);
  /**
   * Values are clamped to ±bound before encoding (the clip norm plus noise headroom).
   */
  'bound': (number);
}
