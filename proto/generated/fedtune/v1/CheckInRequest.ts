// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface CheckInRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
  /**
   * The adapter version the device holds.
   */
  'adapterVersion'?: (number | string | Long);
}

export interface CheckInRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'programId': (string);
  /**
   * The adapter version the device holds.
   */
  'adapterVersion': (number);
}
