// Original file: proto/fedtune.proto

import type { BlobRef as _fedtune_v1_BlobRef, BlobRef__Output as _fedtune_v1_BlobRef__Output } from '../../fedtune/v1/BlobRef.js';
import type { TrainingConfig as _fedtune_v1_TrainingConfig, TrainingConfig__Output as _fedtune_v1_TrainingConfig__Output } from '../../fedtune/v1/TrainingConfig.js';
import type { SignedRelease as _fedtune_v1_SignedRelease, SignedRelease__Output as _fedtune_v1_SignedRelease__Output } from '../../fedtune/v1/SignedRelease.js';
import type { Long } from '@grpc/proto-loader';

export interface RoundWork {
  'roundId'?: (string);
  'adapterVersion'?: (number | string | Long);
  'adapter'?: (_fedtune_v1_BlobRef | null);
  'training'?: (_fedtune_v1_TrainingConfig | null);
  /**
   * Clip bound for this round's update (adaptive clipping may change it).
   */
  'clipNorm'?: (number | string);
  /**
   * Std of the noise the device adds itself (local / distributed DP), 0 otherwise.
   */
  'deviceNoiseStd'?: (number | string);
  'deadlineUnixMs'?: (number | string | Long);
  /**
   * How the device encodes its update: "f32", or the program's compression "q8" / "q4".
   */
  'encoding'?: (string);
  /**
   * The signed release of `adapter`: a device trains only from an adapter whose release verifies.
   */
  'release'?: (_fedtune_v1_SignedRelease | null);
}

export interface RoundWork__Output {
  'roundId': (string);
  'adapterVersion': (number);
  'adapter': (_fedtune_v1_BlobRef__Output | null);
  'training': (_fedtune_v1_TrainingConfig__Output | null);
  /**
   * Clip bound for this round's update (adaptive clipping may change it).
   */
  'clipNorm': (number);
  /**
   * Std of the noise the device adds itself (local / distributed DP), 0 otherwise.
   */
  'deviceNoiseStd': (number);
  'deadlineUnixMs': (number);
  /**
   * How the device encodes its update: "f32", or the program's compression "q8" / "q4".
   */
  'encoding': (string);
  /**
   * The signed release of `adapter`: a device trains only from an adapter whose release verifies.
   */
  'release': (_fedtune_v1_SignedRelease__Output | null);
}
