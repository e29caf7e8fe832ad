// Original file: proto/fedtune.proto

import type { SecAggShare as _fedtune_v1_SecAggShare, SecAggShare__Output as _fedtune_v1_SecAggShare__Output } from '../../fedtune/v1/SecAggShare.js';

export interface SecAggShareList {
  'shares'?: (_fedtune_v1_SecAggShare)[];
}

export interface SecAggShareList__Output {
  'shares': (_fedtune_v1_SecAggShare__Output)[];
}
