// Original file: proto/fedtune.proto

import type { ComeBackLater as _fedtune_v1_ComeBackLater, ComeBackLater__Output as _fedtune_v1_ComeBackLater__Output } from '../../fedtune/v1/ComeBackLater.js';
import type { SecAggParams as _fedtune_v1_SecAggParams, SecAggParams__Output as _fedtune_v1_SecAggParams__Output } from '../../fedtune/v1/SecAggParams.js';
import type { SecAggAdverts as _fedtune_v1_SecAggAdverts, SecAggAdverts__Output as _fedtune_v1_SecAggAdverts__Output } from '../../fedtune/v1/SecAggAdverts.js';
import type { SecAggShares as _fedtune_v1_SecAggShares, SecAggShares__Output as _fedtune_v1_SecAggShares__Output } from '../../fedtune/v1/SecAggShares.js';
import type { SecAggUnmaskRequest as _fedtune_v1_SecAggUnmaskRequest, SecAggUnmaskRequest__Output as _fedtune_v1_SecAggUnmaskRequest__Output } from '../../fedtune/v1/SecAggUnmaskRequest.js';

export interface SecAggResponse {
  /**
   * Not yet: ask again after the delay.
   */
  'wait'?: (_fedtune_v1_ComeBackLater | null);
  'params'?: (_fedtune_v1_SecAggParams | null);
  'adverts'?: (_fedtune_v1_SecAggAdverts | null);
  'shares'?: (_fedtune_v1_SecAggShares | null);
  'unmaskRequest'?: (_fedtune_v1_SecAggUnmaskRequest | null);
  /**
   * The stage's input was accepted.
   */
  'accepted'?: (boolean);
  /**
   * This device's id in the round.
   */
  'myId'?: (number);
  'result'?: "wait"|"params"|"adverts"|"shares"|"unmaskRequest"|"accepted";
}

export interface SecAggResponse__Output {
  /**
   * Not yet: ask again after the delay.
   */
  'wait'?: (_fedtune_v1_ComeBackLater__Output | null);
  'params'?: (_fedtune_v1_SecAggParams__Output | null);
  'adverts'?: (_fedtune_v1_SecAggAdverts__Output | null);
  'shares'?: (_fedtune_v1_SecAggShares__Output | null);
  'unmaskRequest'?: (_fedtune_v1_SecAggUnmaskRequest__Output | null);
  /**
   * The stage's input was accepted.
   */
  'accepted'?: (boolean);
  /**
   * This device's id in the round.
   */
  'myId': (number);
  'result'?: "wait"|"params"|"adverts"|"shares"|"unmaskRequest"|"accepted";
}
