// Original file: proto/fedtune.proto

import type { Auth as _fedtune_v1_Auth, Auth__Output as _fedtune_v1_Auth__Output } from '../../fedtune/v1/Auth.js';
import type { SecAggKeyAdvert as _fedtune_v1_SecAggKeyAdvert, SecAggKeyAdvert__Output as _fedtune_v1_SecAggKeyAdvert__Output } from '../../fedtune/v1/SecAggKeyAdvert.js';
import type { SecAggShareList as _fedtune_v1_SecAggShareList, SecAggShareList__Output as _fedtune_v1_SecAggShareList__Output } from '../../fedtune/v1/SecAggShareList.js';
import type { SecAggUnmask as _fedtune_v1_SecAggUnmask, SecAggUnmask__Output as _fedtune_v1_SecAggUnmask__Output } from '../../fedtune/v1/SecAggUnmask.js';

export interface SecAggRequest {
  'auth'?: (_fedtune_v1_Auth | null);
  'programId'?: (string);
  'roundId'?: (string);
  /**
   * The round's parameters and this device's id (waits until selection closes).
   */
  'getParams'?: (boolean);
  /**
   * Step 1: this device's signed key advert.
   */
  'advertise'?: (_fedtune_v1_SecAggKeyAdvert | null);
  /**
   * The adverts and signing keys of the participants (waits until adverts close).
   */
  'getAdverts'?: (boolean);
  /**
   * Step 2: encrypted shares for neighbours.
   */
  'shareKeys'?: (_fedtune_v1_SecAggShareList | null);
  /**
   * The shares addressed to this device and the list of devices that shared (waits).
   */
  'getShares'?: (boolean);
  /**
   * The unmask request (waits until masked inputs close).
   */
  'getUnmask'?: (boolean);
  /**
   * Step 4: the requested shares.
   */
  'unmask'?: (_fedtune_v1_SecAggUnmask | null);
  'stage'?: "getParams"|"advertise"|"getAdverts"|"shareKeys"|"getShares"|"getUnmask"|"unmask";
}

export interface SecAggRequest__Output {
  'auth': (_fedtune_v1_Auth__Output | null);
  'programId': (string);
  'roundId': (string);
  /**
   * The round's parameters and this device's id (waits until selection closes).
   */
  'getParams'?: (boolean);
  /**
   * Step 1: this device's signed key advert.
   */
  'advertise'?: (_fedtune_v1_SecAggKeyAdvert__Output | null);
  /**
   * The adverts and signing keys of the participants (waits until adverts close).
   */
  'getAdverts'?: (boolean);
  /**
   * Step 2: encrypted shares for neighbours.
   */
  'shareKeys'?: (_fedtune_v1_SecAggShareList__Output | null);
  /**
   * The shares addressed to this device and the list of devices that shared (waits).
   */
  'getShares'?: (boolean);
  /**
   * The unmask request (waits until masked inputs close).
   */
  'getUnmask'?: (boolean);
  /**
   * Step 4: the requested shares.
   */
  'unmask'?: (_fedtune_v1_SecAggUnmask__Output | null);
  'stage'?: "getParams"|"advertise"|"getAdverts"|"shareKeys"|"getShares"|"getUnmask"|"unmask";
}
