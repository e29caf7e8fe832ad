// Original file: proto/fedtune.proto

import type { SecAggKeyAdvert as _fedtune_v1_SecAggKeyAdvert, SecAggKeyAdvert__Output as _fedtune_v1_SecAggKeyAdvert__Output } from '../../fedtune/v1/SecAggKeyAdvert.js';
import type { SecAggSignKey as _fedtune_v1_SecAggSignKey, SecAggSignKey__Output as _fedtune_v1_SecAggSignKey__Output } from '../../fedtune/v1/SecAggSignKey.js';

export interface SecAggAdverts {
  'adverts'?: (_fedtune_v1_SecAggKeyAdvert)[];
  'signKeys'?: (_fedtune_v1_SecAggSignKey)[];
}

export interface SecAggAdverts__Output {
  'adverts': (_fedtune_v1_SecAggKeyAdvert__Output)[];
  'signKeys': (_fedtune_v1_SecAggSignKey__Output)[];
}
