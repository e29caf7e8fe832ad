// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { Long } from '@grpc/proto-loader';

export interface CheckInRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
  /**
   * The global adapter version the device holds (0 = the initial adapter, or none yet). A
   * version newer than the program's latest is INVALID_ARGUMENT.
   */
  'adapterVersion'?: (number | string | Long);
}

export interface CheckInRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'programId': (string);
  /**
   * The global adapter version the device holds (0 = the initial adapter, or none yet). A
   * version newer than the program's latest is INVALID_ARGUMENT.
   */
  'adapterVersion': (number);
}
