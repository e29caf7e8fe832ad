// Original file: proto/fedtune.proto


export interface SecAggKeyAdvert {
  'id'?: (number);
  'maskKey'?: (Buffer | Uint8Array | string);
  'shareKey'?: (Buffer | Uint8Array | string);
  /**
   * Ed25519 signature by the device's enrolment key over the keys and round.
   */
  'signature'?: (Buffer | Uint8Array | string);
  /**
   * Required: SHA-256 of UTF-8 "fedtune.secagg.selfmask.v1|<round_id>|<id>|" followed by the 32-byte
   * self-mask seed b. The coordinator checks the b it rebuilds at unmask against it (so a neighbour's
   * false share cannot change b unnoticed); an advert without it is INVALID_ARGUMENT.
   */
  'selfMaskCommitment'?: (Buffer | Uint8Array | string);
}

export interface SecAggKeyAdvert__Output {
  'id': (number);
  'maskKey': (Buffer);
  'shareKey': (Buffer);
  /**
   * Ed25519 signature by the device's enrolment key over the keys and round.
   */
  'signature': (Buffer);
  /**
   * Required: SHA-256 of UTF-8 "fedtune.secagg.selfmask.v1|<round_id>|<id>|" followed by the 32-byte
   * self-mask seed b. The coordinator checks the b it rebuilds at unmask against it (so a neighbour's
   * false share cannot change b unnoticed); an advert without it is INVALID_ARGUMENT.
   */
  'selfMaskCommitment': (Buffer);
}
