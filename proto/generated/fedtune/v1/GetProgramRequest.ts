// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';

export interface GetProgramRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
}

export interface GetProgramRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'programId': (string);
}
