import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from './fedtune/v1/Auth.js';
import type { BlobChunk as _fedtune_v1_BlobChunk, BlobChunk__Output as _fedtune_v1_BlobChunk__Output } from './fedtune/v1/BlobChunk.js';
import type { BlobRef as _fedtune_v1_BlobRef, BlobRef__Output as _fedtune_v1_BlobRef__Output } from './fedtune/v1/BlobRef.js';
import type { CheckInRequest as _fedtune_v1_CheckInRequest, CheckInRequest__Output as _fedtune_v1_CheckInRequest__Output } from './fedtune/v1/CheckInRequest.js';
import type { CheckInResponse as _fedtune_v1_CheckInResponse, CheckInResponse__Output as _fedtune_v1_CheckInResponse__Output } from './fedtune/v1/CheckInResponse.js';
import type { ComeBackLater as _fedtune_v1_ComeBackLater, ComeBackLater__Output as _fedtune_v1_ComeBackLater__Output } from './fedtune/v1/ComeBackLater.js';
import type { CoordinatorClient as _fedtune_v1_CoordinatorClient, CoordinatorDefinition as _fedtune_v1_CoordinatorDefinition } from './fedtune/v1/Coordinator.js';
import type { DownloadBlobRequest as _fedtune_v1_DownloadBlobRequest, DownloadBlobRequest__Output as _fedtune_v1_DownloadBlobRequest__Output } from './fedtune/v1/DownloadBlobRequest.js';
import type { DpConfig as _fedtune_v1_DpConfig, DpConfig__Output as _fedtune_v1_DpConfig__Output } from './fedtune/v1/DpConfig.js';
import type { EnrollRequest as _fedtune_v1_EnrollRequest, EnrollRequest__Output as _fedtune_v1_EnrollRequest__Output } from './fedtune/v1/EnrollRequest.js';
import type { EnrollResponse as _fedtune_v1_EnrollResponse, EnrollResponse__Output as _fedtune_v1_EnrollResponse__Output } from './fedtune/v1/EnrollResponse.js';
import type { EnrolmentProof as _fedtune_v1_EnrolmentProof, EnrolmentProof__Output as _fedtune_v1_EnrolmentProof__Output } from './fedtune/v1/EnrolmentProof.js';
import type { GetProgramRequest as _fedtune_v1_GetProgramRequest, GetProgramRequest__Output as _fedtune_v1_GetProgramRequest__Output } from './fedtune/v1/GetProgramRequest.js';
import type { LoraConfig as _fedtune_v1_LoraConfig, LoraConfig__Output as _fedtune_v1_LoraConfig__Output } from './fedtune/v1/LoraConfig.js';
import type { ProgramConfig as _fedtune_v1_ProgramConfig, ProgramConfig__Output as _fedtune_v1_ProgramConfig__Output } from './fedtune/v1/ProgramConfig.js';
import type { RoundEvent as _fedtune_v1_RoundEvent, RoundEvent__Output as _fedtune_v1_RoundEvent__Output } from './fedtune/v1/RoundEvent.js';
import type { RoundWork as _fedtune_v1_RoundWork, RoundWork__Output as _fedtune_v1_RoundWork__Output } from './fedtune/v1/RoundWork.js';
import type { SecAggAdverts as _fedtune_v1_SecAggAdverts, SecAggAdverts__Output as _fedtune_v1_SecAggAdverts__Output } from './fedtune/v1/SecAggAdverts.js';
import type { SecAggKeyAdvert as _fedtune_v1_SecAggKeyAdvert, SecAggKeyAdvert__Output as _fedtune_v1_SecAggKeyAdvert__Output } from './fedtune/v1/SecAggKeyAdvert.js';
import type { SecAggParams as _fedtune_v1_SecAggParams, SecAggParams__Output as _fedtune_v1_SecAggParams__Output } from './fedtune/v1/SecAggParams.js';
import type { SecAggRequest as _fedtune_v1_SecAggRequest, SecAggRequest__Output as _fedtune_v1_SecAggRequest__Output } from './fedtune/v1/SecAggRequest.js';
import type { SecAggResponse as _fedtune_v1_SecAggResponse, SecAggResponse__Output as _fedtune_v1_SecAggResponse__Output } from './fedtune/v1/SecAggResponse.js';
import type { SecAggShare as _fedtune_v1_SecAggShare, SecAggShare__Output as _fedtune_v1_SecAggShare__Output } from './fedtune/v1/SecAggShare.js';
import type { SecAggShareList as _fedtune_v1_SecAggShareList, SecAggShareList__Output as _fedtune_v1_SecAggShareList__Output } from './fedtune/v1/SecAggShareList.js';
import type { SecAggShareValue as _fedtune_v1_SecAggShareValue, SecAggShareValue__Output as _fedtune_v1_SecAggShareValue__Output } from './fedtune/v1/SecAggShareValue.js';
import type { SecAggShares as _fedtune_v1_SecAggShares, SecAggShares__Output as _fedtune_v1_SecAggShares__Output } from './fedtune/v1/SecAggShares.js';
import type { SecAggSignKey as _fedtune_v1_SecAggSignKey, SecAggSignKey__Output as _fedtune_v1_SecAggSignKey__Output } from './fedtune/v1/SecAggSignKey.js';
import type { SecAggUnmask as _fedtune_v1_SecAggUnmask, SecAggUnmask__Output as _fedtune_v1_SecAggUnmask__Output } from './fedtune/v1/SecAggUnmask.js';
import type { SecAggUnmaskRequest as _fedtune_v1_SecAggUnmaskRequest, SecAggUnmaskRequest__Output as _fedtune_v1_SecAggUnmaskRequest__Output } from './fedtune/v1/SecAggUnmaskRequest.js';
import type { SignedRelease as _fedtune_v1_SignedRelease, SignedRelease__Output as _fedtune_v1_SignedRelease__Output } from './fedtune/v1/SignedRelease.js';
import type { TrainingConfig as _fedtune_v1_TrainingConfig, TrainingConfig__Output as _fedtune_v1_TrainingConfig__Output } from './fedtune/v1/TrainingConfig.js';
import type { UpdateChunk as _fedtune_v1_UpdateChunk, UpdateChunk__Output as _fedtune_v1_UpdateChunk__Output } from './fedtune/v1/UpdateChunk.js';
import type { UpdateHeader as _fedtune_v1_UpdateHeader, UpdateHeader__Output as _fedtune_v1_UpdateHeader__Output } from './fedtune/v1/UpdateHeader.js';
import type { UploadUpdateResponse as _fedtune_v1_UploadUpdateResponse, UploadUpdateResponse__Output as _fedtune_v1_UploadUpdateResponse__Output } from './fedtune/v1/UploadUpdateResponse.js';
import type { WatchRoundsRequest as _fedtune_v1_WatchRoundsRequest, WatchRoundsRequest__Output as _fedtune_v1_WatchRoundsRequest__Output } from './fedtune/v1/WatchRoundsRequest.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  fedtune: {
    v1: {
      Auth: MessageTypeDefinition<_fedtune_v1_Auth, _fedtune_v1_Auth__Output>
      BlobChunk: MessageTypeDefinition<_fedtune_v1_BlobChunk, _fedtune_v1_BlobChunk__Output>
      BlobRef: MessageTypeDefinition<_fedtune_v1_BlobRef, _fedtune_v1_BlobRef__Output>
      CheckInRequest: MessageTypeDefinition<_fedtune_v1_CheckInRequest, _fedtune_v1_CheckInRequest__Output>
      CheckInResponse: MessageTypeDefinition<_fedtune_v1_CheckInResponse, _fedtune_v1_CheckInResponse__Output>
      ComeBackLater: MessageTypeDefinition<_fedtune_v1_ComeBackLater, _fedtune_v1_ComeBackLater__Output>
      Coordinator: SubtypeConstructor<typeof grpc.Client, _fedtune_v1_CoordinatorClient> & { service: _fedtune_v1_CoordinatorDefinition }
      DownloadBlobRequest: MessageTypeDefinition<_fedtune_v1_DownloadBlobRequest, _fedtune_v1_DownloadBlobRequest__Output>
      DpConfig: MessageTypeDefinition<_fedtune_v1_DpConfig, _fedtune_v1_DpConfig__Output>
      EnrollRequest: MessageTypeDefinition<_fedtune_v1_EnrollRequest, _fedtune_v1_EnrollRequest__Output>
      EnrollResponse: MessageTypeDefinition<_fedtune_v1_EnrollResponse, _fedtune_v1_EnrollResponse__Output>
      EnrolmentProof: MessageTypeDefinition<_fedtune_v1_EnrolmentProof, _fedtune_v1_EnrolmentProof__Output>
      GetProgramRequest: MessageTypeDefinition<_fedtune_v1_GetProgramRequest, _fedtune_v1_GetProgramRequest__Output>
      LoraConfig: MessageTypeDefinition<_fedtune_v1_LoraConfig, _fedtune_v1_LoraConfig__Output>
      ProgramConfig: MessageTypeDefinition<_fedtune_v1_ProgramConfig, _fedtune_v1_ProgramConfig__Output>
      RoundEvent: MessageTypeDefinition<_fedtune_v1_RoundEvent, _fedtune_v1_RoundEvent__Output>
      RoundState: EnumTypeDefinition
      RoundWork: MessageTypeDefinition<_fedtune_v1_RoundWork, _fedtune_v1_RoundWork__Output>
      SecAggAdverts: MessageTypeDefinition<_fedtune_v1_SecAggAdverts, _fedtune_v1_SecAggAdverts__Output>
      SecAggKeyAdvert: MessageTypeDefinition<_fedtune_v1_SecAggKeyAdvert, _fedtune_v1_SecAggKeyAdvert__Output>
      SecAggParams: MessageTypeDefinition<_fedtune_v1_SecAggParams, _fedtune_v1_SecAggParams__Output>
      SecAggRequest: MessageTypeDefinition<_fedtune_v1_SecAggRequest, _fedtune_v1_SecAggRequest__Output>
      SecAggResponse: MessageTypeDefinition<_fedtune_v1_SecAggResponse, _fedtune_v1_SecAggResponse__Output>
      SecAggShare: MessageTypeDefinition<_fedtune_v1_SecAggShare, _fedtune_v1_SecAggShare__Output>
      SecAggShareList: MessageTypeDefinition<_fedtune_v1_SecAggShareList, _fedtune_v1_SecAggShareList__Output>
      SecAggShareValue: MessageTypeDefinition<_fedtune_v1_SecAggShareValue, _fedtune_v1_SecAggShareValue__Output>
      SecAggShares: MessageTypeDefinition<_fedtune_v1_SecAggShares, _fedtune_v1_SecAggShares__Output>
      SecAggSignKey: MessageTypeDefinition<_fedtune_v1_SecAggSignKey, _fedtune_v1_SecAggSignKey__Output>
      SecAggUnmask: MessageTypeDefinition<_fedtune_v1_SecAggUnmask, _fedtune_v1_SecAggUnmask__Output>
      SecAggUnmaskRequest: MessageTypeDefinition<_fedtune_v1_SecAggUnmaskRequest, _fedtune_v1_SecAggUnmaskRequest__Output>
      SignedRelease: MessageTypeDefinition<_fedtune_v1_SignedRelease, _fedtune_v1_SignedRelease__Output>
      TrainingConfig: MessageTypeDefinition<_fedtune_v1_TrainingConfig, _fedtune_v1_TrainingConfig__Output>
      UpdateChunk: MessageTypeDefinition<_fedtune_v1_UpdateChunk, _fedtune_v1_UpdateChunk__Output>
      UpdateHeader: MessageTypeDefinition<_fedtune_v1_UpdateHeader, _fedtune_v1_UpdateHeader__Output>
      UploadUpdateResponse: MessageTypeDefinition<_fedtune_v1_UploadUpdateResponse, _fedtune_v1_UploadUpdateResponse__Output>
      WatchRoundsRequest: MessageTypeDefinition<_fedtune_v1_WatchRoundsRequest, _fedtune_v1_WatchRoundsRequest__Output>
    }
  }
}

