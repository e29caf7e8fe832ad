// Original file: proto/fedtune.proto

import type { SecAggShareValue as _fedtune_v1_SecAggShareValue, SecAggShareValue__Output as _fedtune_v1_SecAggShareValue__Output } from '../../fedtune/v1/SecAggShareValue.js';

export interface SecAggUnmask {
  'selfMask'?: (_fedtune_v1_SecAggShareValue)[];
  'key'?: (_fedtune_v1_SecAggShareValue)[];
}

export interface SecAggUnmask__Output {
  'selfMask': (_fedtune_v1_SecAggShareValue__Output)[];
  'key': (_fedtune_v1_SecAggShareValue__Output)[];
}
