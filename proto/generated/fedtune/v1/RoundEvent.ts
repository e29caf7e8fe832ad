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
  /**
   * The round's clip bound C and noise multiplier z (0 when not used).
   */
  'clipNorm'?: (number | string);
  'noiseMultiplier'?: (number | string);
  /**
   * Bytes of updates received this round (sealed payloads).
   */
  'bytesReceived'?: (number | string | Long);
  /**
   * Devices handed work this round, and devices that failed or were rejected.
   */
  'devicesSelected'?: (number);
  'devicesFailed'?: (number);
  /**
   * Programs with server-side evaluation, in COMPLETED events: the new adapter's mean loss (nats
   * per token) on the coordinator's held-out data, and on its base-domain text (forgetting).
   * 0 when there is none (a mean loss in nats per token is never exactly 0); plain fields rather
   * than proto3 `optional`, which older protoc releases (e.g. Debian's grpc-tools) refuse.
   */
  'heldoutLoss'?: (number | string);
  'baseTextLoss'?: (number | string);
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
  /**
   * The round's clip bound C and noise multiplier z (0 when not used).
   */
  'clipNorm': (number);
  'noiseMultiplier': (number);
  /**
   * Bytes of updates received this round (sealed payloads).
   */
  'bytesReceived': (number);
  /**
   * Devices handed work this round, and devices that failed or were rejected.
   */
  'devicesSelected': (number);
  'devicesFailed': (number);
  /**
   * Programs with server-side evaluation, in COMPLETED events: the new adapter's mean loss (nats
   * per token) on the coordinator's held-out data, and on its base-domain text (forgetting).
   * 0 when there is none (a mean loss in nats per token is never exactly 0); plain fields rather
   * than proto3 `optional`, which older protoc releases (e.g. Debian's grpc-tools) refuse.
   */
  'heldoutLoss': (number);
  'baseTextLoss': (number);
}
