// Original file: proto/fedtune.proto

import type { RoundWork as _fedtune_v1_RoundWork, RoundWork__Output as _fedtune_v1_RoundWork__Output } from '../../fedtune/v1/RoundWork.js';
import type { ComeBackLater as _fedtune_v1_ComeBackLater, ComeBackLater__Output as _fedtune_v1_ComeBackLater__Output } from '../../fedtune/v1/ComeBackLater.js';

export interface CheckInResponse {
  'work'?: (_fedtune_v1_RoundWork | null);
  'later'?: (_fedtune_v1_ComeBackLater | null);
  'result'?: "work"|"later";
}

export interface CheckInResponse__Output {
  'work'?: (_fedtune_v1_RoundWork__Output | null);
  'later'?: (_fedtune_v1_ComeBackLater__Output | null);
  'result'?: "work"|"later";
}
