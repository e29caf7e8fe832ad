// Original file: proto/fedtune.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { BlobChunk as _fedtune_v1_BlobChunk, BlobChunk__Output as _fedtune_v1_BlobChunk__Output } from '../../fedtune/v1/BlobChunk.js';
import type { CheckInRequest as _fedtune_v1_CheckInRequest, CheckInRequest__Output as _fedtune_v1_CheckInRequest__Output } from '../../fedtune/v1/CheckInRequest.js';
import type { CheckInResponse as _fedtune_v1_CheckInResponse, CheckInResponse__Output as _fedtune_v1_CheckInResponse__Output } from '../../fedtune/v1/CheckInResponse.js';
import type { DownloadBlobRequest as _fedtune_v1_DownloadBlobRequest, DownloadBlobRequest__Output as _fedtune_v1_DownloadBlobRequest__Output } from '../../fedtune/v1/DownloadBlobRequest.js';
import type { EnrollRequest as _fedtune_v1_EnrollRequest, EnrollRequest__Output as _fedtune_v1_EnrollRequest__Output } from '../../fedtune/v1/EnrollRequest.js';
import type { EnrollResponse as _fedtune_v1_EnrollResponse, EnrollResponse__Output as _fedtune_v1_EnrollResponse__Output } from '../../fedtune/v1/EnrollResponse.js';
import type { GetProgramRequest as _fedtune_v1_GetProgramRequest, GetProgramRequest__Output as _fedtune_v1_GetProgramRequest__Output } from '../../fedtune/v1/GetProgramRequest.js';
import type { ProgramConfig as _fedtune_v1_ProgramConfig, ProgramConfig__Output as _fedtune_v1_ProgramConfig__Output } from '../../fedtune/v1/ProgramConfig.js';
import type { RoundEvent as _fedtune_v1_RoundEvent, RoundEvent__Output as _fedtune_v1_RoundEvent__Output } from '../../fedtune/v1/RoundEvent.js';
import type { SecAggRequest as _fedtune_v1_SecAggRequest, SecAggRequest__Output as _fedtune_v1_SecAggRequest__Output } from '../../fedtune/v1/SecAggRequest.js';
import type { SecAggResponse as _fedtune_v1_SecAggResponse, SecAggResponse__Output as _fedtune_v1_SecAggResponse__Output } from '../../fedtune/v1/SecAggResponse.js';
import type { UpdateChunk as _fedtune_v1_UpdateChunk, UpdateChunk__Output as _fedtune_v1_UpdateChunk__Output } from '../../fedtune/v1/UpdateChunk.js';
import type { UploadUpdateResponse as _fedtune_v1_UploadUpdateResponse, UploadUpdateResponse__Output as _fedtune_v1_UploadUpdateResponse__Output } from '../../fedtune/v1/UploadUpdateResponse.js';
import type { WatchRoundsRequest as _fedtune_v1_WatchRoundsRequest, WatchRoundsRequest__Output as _fedtune_v1_WatchRoundsRequest__Output } from '../../fedtune/v1/WatchRoundsRequest.js';

export interface CoordinatorClient extends grpc.Client {
  /**
   * Ask for work: a round to join, or when to come back.
   */
  CheckIn(argument: _fedtune_v1_CheckInRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  CheckIn(argument: _fedtune_v1_CheckInRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  CheckIn(argument: _fedtune_v1_CheckInRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  CheckIn(argument: _fedtune_v1_CheckInRequest, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Ask for work: a round to join, or when to come back.
   */
  checkIn(argument: _fedtune_v1_CheckInRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  checkIn(argument: _fedtune_v1_CheckInRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  checkIn(argument: _fedtune_v1_CheckInRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  checkIn(argument: _fedtune_v1_CheckInRequest, callback: grpc.requestCallback<_fedtune_v1_CheckInResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * A content-addressed blob (the base model, an adapter version) from an offset, in chunks.
   */
  DownloadBlob(argument: _fedtune_v1_DownloadBlobRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_BlobChunk__Output>;
  DownloadBlob(argument: _fedtune_v1_DownloadBlobRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_BlobChunk__Output>;
  /**
   * A content-addressed blob (the base model, an adapter version) from an offset, in chunks.
   */
  downloadBlob(argument: _fedtune_v1_DownloadBlobRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_BlobChunk__Output>;
  downloadBlob(argument: _fedtune_v1_DownloadBlobRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_BlobChunk__Output>;
  
  /**
   * Join a program with its enrolment token and the device's public keys.
   */
  Enroll(argument: _fedtune_v1_EnrollRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  Enroll(argument: _fedtune_v1_EnrollRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  Enroll(argument: _fedtune_v1_EnrollRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  Enroll(argument: _fedtune_v1_EnrollRequest, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Join a program with its enrolment token and the device's public keys.
   */
  enroll(argument: _fedtune_v1_EnrollRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  enroll(argument: _fedtune_v1_EnrollRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  enroll(argument: _fedtune_v1_EnrollRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  enroll(argument: _fedtune_v1_EnrollRequest, callback: grpc.requestCallback<_fedtune_v1_EnrollResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The program's configuration: base model, LoRA shape, training and privacy settings.
   */
  GetProgram(argument: _fedtune_v1_GetProgramRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  GetProgram(argument: _fedtune_v1_GetProgramRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  GetProgram(argument: _fedtune_v1_GetProgramRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  GetProgram(argument: _fedtune_v1_GetProgramRequest, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  /**
   * The program's configuration: base model, LoRA shape, training and privacy settings.
   */
  getProgram(argument: _fedtune_v1_GetProgramRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  getProgram(argument: _fedtune_v1_GetProgramRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  getProgram(argument: _fedtune_v1_GetProgramRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  getProgram(argument: _fedtune_v1_GetProgramRequest, callback: grpc.requestCallback<_fedtune_v1_ProgramConfig__Output>): grpc.ClientUnaryCall;
  
  /**
   * Secure aggregation stages of a round (programs with secagg): the device polls each stage;
   * its masked input travels through UploadUpdate with encoding "masked".
   */
  SecAgg(argument: _fedtune_v1_SecAggRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  SecAgg(argument: _fedtune_v1_SecAggRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  SecAgg(argument: _fedtune_v1_SecAggRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  SecAgg(argument: _fedtune_v1_SecAggRequest, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Secure aggregation stages of a round (programs with secagg): the device polls each stage;
   * its masked input travels through UploadUpdate with encoding "masked".
   */
  secAgg(argument: _fedtune_v1_SecAggRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  secAgg(argument: _fedtune_v1_SecAggRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  secAgg(argument: _fedtune_v1_SecAggRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  secAgg(argument: _fedtune_v1_SecAggRequest, callback: grpc.requestCallback<_fedtune_v1_SecAggResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Upload one encrypted update: a header chunk, then data chunks.
   */
  UploadUpdate(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  UploadUpdate(metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  UploadUpdate(options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  UploadUpdate(callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  /**
   * Upload one encrypted update: a header chunk, then data chunks.
   */
  uploadUpdate(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  uploadUpdate(metadata: grpc.Metadata, callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  uploadUpdate(options: grpc.CallOptions, callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  uploadUpdate(callback: grpc.requestCallback<_fedtune_v1_UploadUpdateResponse__Output>): grpc.ClientWritableStream<_fedtune_v1_UpdateChunk>;
  
  /**
   * Round lifecycle events of a program, from a given round on.
   */
  WatchRounds(argument: _fedtune_v1_WatchRoundsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_RoundEvent__Output>;
  WatchRounds(argument: _fedtune_v1_WatchRoundsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_RoundEvent__Output>;
  /**
   * Round lifecycle events of a program, from a given round on.
   */
  watchRounds(argument: _fedtune_v1_WatchRoundsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_RoundEvent__Output>;
  watchRounds(argument: _fedtune_v1_WatchRoundsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_fedtune_v1_RoundEvent__Output>;
  
}

export interface CoordinatorHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Ask for work: a round to join, or when to come back.
   */
  CheckIn: grpc.handleUnaryCall<_fedtune_v1_CheckInRequest__Output, _fedtune_v1_CheckInResponse>;
  
  /**
   * A content-addressed blob (the base model, an adapter version) from an offset, in chunks.
   */
  DownloadBlob: grpc.handleServerStreamingCall<_fedtune_v1_DownloadBlobRequest__Output, _fedtune_v1_BlobChunk>;
  
  /**
   * Join a program with its enrolment token and the device's public keys.
   */
  Enroll: grpc.handleUnaryCall<_fedtune_v1_EnrollRequest__Output, _fedtune_v1_EnrollResponse>;
  
  /**
   * The program's configuration: base model, LoRA shape, training and privacy settings.
   */
  GetProgram: grpc.handleUnaryCall<_fedtune_v1_GetProgramRequest__Output, _fedtune_v1_ProgramConfig>;
  
  /**
   * Secure aggregation stages of a round (programs with secagg): the device polls each stage;
   * its masked input travels through UploadUpdate with encoding "masked".
   */
  SecAgg: grpc.handleUnaryCall<_fedtune_v1_SecAggRequest__Output, _fedtune_v1_SecAggResponse>;
  
  /**
   * Upload one encrypted update: a header chunk, then data chunks.
   */
  UploadUpdate: grpc.handleClientStreamingCall<_fedtune_v1_UpdateChunk__Output, _fedtune_v1_UploadUpdateResponse>;
  
  /**
   * Round lifecycle events of a program, from a given round on.
   */
  WatchRounds: grpc.handleServerStreamingCall<_fedtune_v1_WatchRoundsRequest__Output, _fedtune_v1_RoundEvent>;
  
}

export interface CoordinatorDefinition extends grpc.ServiceDefinition {
  CheckIn: MethodDefinition<_fedtune_v1_CheckInRequest, _fedtune_v1_CheckInResponse, _fedtune_v1_CheckInRequest__Output, _fedtune_v1_CheckInResponse__Output>
  DownloadBlob: MethodDefinition<_fedtune_v1_DownloadBlobRequest, _fedtune_v1_BlobChunk, _fedtune_v1_DownloadBlobRequest__Output, _fedtune_v1_BlobChunk__Output>
  Enroll: MethodDefinition<_fedtune_v1_EnrollRequest, _fedtune_v1_EnrollResponse, _fedtune_v1_EnrollRequest__Output, _fedtune_v1_EnrollResponse__Output>
  GetProgram: MethodDefinition<_fedtune_v1_GetProgramRequest, _fedtune_v1_ProgramConfig, _fedtune_v1_GetProgramRequest__Output, _fedtune_v1_ProgramConfig__Output>
  SecAgg: MethodDefinition<_fedtune_v1_SecAggRequest, _fedtune_v1_SecAggResponse, _fedtune_v1_SecAggRequest__Output, _fedtune_v1_SecAggResponse__Output>
  UploadUpdate: MethodDefinition<_fedtune_v1_UpdateChunk, _fedtune_v1_UploadUpdateResponse, _fedtune_v1_UpdateChunk__Output, _fedtune_v1_UploadUpdateResponse__Output>
  WatchRounds: MethodDefinition<_fedtune_v1_WatchRoundsRequest, _fedtune_v1_RoundEvent, _fedtune_v1_WatchRoundsRequest__Output, _fedtune_v1_RoundEvent__Output>
}
