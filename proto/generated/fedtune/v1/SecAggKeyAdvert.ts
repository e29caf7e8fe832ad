// Original file: proto/fedtune.proto


export interface SecAggKeyAdvert {
  'id'?: (number);
  'maskKey'?: (Buffer | Uint8Array | string);
  'shareKey'?: (Buffer | Uint8Array | string);
  /**
   * Ed25519 signature by the device's enrolment key over the keys and round.
   */
  'signature'?: (Buffer | Uint8Array | string);
}

export interface SecAggKeyAdvert__Output {
  'id': (number);
  'maskKey': (Buffer);
  'shareKey': (Buffer);
  /**
   * Ed25519 signature by the device's enrolment key over the keys and round.
   */
  'signature': (Buffer);
}
