// Original file: proto/fedtune.proto

import type { Long } from '@grpc/proto-loader';

export interface LoraConfig {
  'rank'?: (number);
  'alpha'?: (number | string);
  'targets'?: (string)[];
  'dropout'?: (number | string);
  'freezeA'?: (boolean);
  'seed'?: (number | string | Long);
}

export interface LoraConfig__Output {
  'rank': (number);
  'alpha': (number);
  'targets': (string)[];
  'dropout': (number);
  'freezeA': (boolean);
  'seed': (number);
}
