// Original file: proto/fedtune.proto

import type { UpdateHeader as _fedtune_v1_UpdateHeader, UpdateHeader__Output as _fedtune_v1_UpdateHeader__Output } from '../../fedtune/v1/UpdateHeader.js';

export interface UpdateChunk {
  'header'?: (_fedtune_v1_UpdateHeader | null);
  'data'?: (Buffer | Uint8Array | string);
  'part'?: "header"|"data";
}

export interface UpdateChunk__Output {
  'header'?: (_fedtune_v1_UpdateHeader__Output | null);
  'data'?: (Buffer);
  'part'?: "header"|"data";
}
