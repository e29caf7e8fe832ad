// Original file: proto/fedtune.proto

import type { RoundState as _fedtune_v1_RoundState, RoundState__Output as _fedtune_v1_RoundState__Output } from '../../fedtune/v1/RoundState.js';
import type { Long } from '@grpc/proto-loader';

export interface RoundEvent {
  'programId'?: (string);
  'roundNumber'?: (number | string | Long);
  'roundId'?: (string);
  'state'?: (_fedtune_v1_RoundState);
  'adapterVersion'?: (number | string | Long);
  'updatesReceived'?: (number);
  /**
   * Privacy spent by the program so far, at the program's δ.
   */
  'epsilonSpent'?: (number | string);
  'message'?: (string);
  'timeUnixMs'?: (number | string | Long);
}

export interface RoundEvent__Output {
  'programId': (string);
  'roundNumber': (number);
  'roundId': (string);
  'state': (_fedtune_v1_RoundState__Output);
  'adapterVersion': (number);
  'updatesReceived': (number);
  /**
   * Privacy spent by the program so far, at the program's δ.
   */
  'epsilonSpent': (number);
  'message': (string);
  'timeUnixMs': (number);
}
