// Original file: proto/fedtune.proto

import type { BlobRef as _fedtune_v1_BlobRef, BlobRef__Output as _fedtune_v1_BlobRef__Output } from '../../fedtune/v1/BlobRef.js';
import type { LoraConfig as _fedtune_v1_LoraConfig, LoraConfig__Output as _fedtune_v1_LoraConfig__Output } from '../../fedtune/v1/LoraConfig.js';
import type { TrainingConfig as _fedtune_v1_TrainingConfig, TrainingConfig__Output as _fedtune_v1_TrainingConfig__Output } from '../../fedtune/v1/TrainingConfig.js';
import type { DpConfig as _fedtune_v1_DpConfig, DpConfig__Output as _fedtune_v1_DpConfig__Output } from '../../fedtune/v1/DpConfig.js';
import type { SignedRelease as _fedtune_v1_SignedRelease, SignedRelease__Output as _fedtune_v1_SignedRelease__Output } from '../../fedtune/v1/SignedRelease.js';
import type { Long } from '@grpc/proto-loader';

export interface ProgramConfig {
  'programId'?: (string);
  'base'?: (_fedtune_v1_BlobRef | null);
  'lora'?: (_fedtune_v1_LoraConfig | null);
  'training'?: (_fedtune_v1_TrainingConfig | null);
  'dp'?: (_fedtune_v1_DpConfig | null);
  'programBoxPublicKey'?: (Buffer | Uint8Array | string);
  /**
   * The global adapter now, and its blob (a safetensors file; its header gives the tensor shapes
   * and so the update length: this config carries no model dimensions, see CONTRACT.md).
   */
  'adapterVersion'?: (number | string | Long);
  'adapter'?: (_fedtune_v1_BlobRef | null);
  'roundsTotal'?: (number);
  /**
   * The tokenizer (a llama2.c tok*.bin) for a llama2.c base, or for a GGUF base whose program
   * names one to use instead of the GGUF's own vocabulary; else unset.
   */
  'tokenizer'?: (_fedtune_v1_BlobRef | null);
  /**
   * Rounds completed so far.
   */
  'roundsCompleted'?: (number);
  /**
   * The program's current release: the signed manifest of `adapter` (CONTRACT.md, "Releases").
   * Unset while the program's first release awaits an offline signature.
   */
  'release'?: (_fedtune_v1_SignedRelease | null);
  /**
   * The program's Ed25519 release key, as at enrolment (a device refuses a changed one).
   */
  'releasePublicKey'?: (Buffer | Uint8Array | string);
}

export interface ProgramConfig__Output {
  'programId': (string);
  'base': (_fedtune_v1_BlobRef__Output | null);
  'lora': (_fedtune_v1_LoraConfig__Output | null);
  'training': (_fedtune_v1_TrainingConfig__Output | null);
  'dp': (_fedtune_v1_DpConfig__Output | null);
  'programBoxPublicKey': (Buffer);
  /**
   * The global adapter now, and its blob (a safetensors file; its header gives the tensor shapes
   * and so the update length: this config carries no model dimensions, see CONTRACT.md).
   */
  'adapterVersion': (number);
  'adapter': (_fedtune_v1_BlobRef__Output | null);
  'roundsTotal': (number);
  /**
   * The tokenizer (a llama2.c tok*.bin) for a llama2.c base, or for a GGUF base whose program
   * names one to use instead of the GGUF's own vocabulary; else unset.
   */
  'tokenizer': (_fedtune_v1_BlobRef__Output | null);
  /**
   * Rounds completed so far.
   */
  'roundsCompleted': (number);
  /**
   * The program's current release: the signed manifest of `adapter` (CONTRACT.md, "Releases").
   * Unset while the program's first release awaits an offline signature.
   */
  'release': (_fedtune_v1_SignedRelease__Output | null);
  /**
   * The program's Ed25519 release key, as at enrolment (a device refuses a changed one).
   */
  'releasePublicKey': (Buffer);
}
