// Original file: proto/fedtune.proto


export interface SecAggShare {
  'from'?: (number);
  'to'?: (number);
  /**
   * Shares of the sender's self-mask seed and mask key, encrypted to the recipient.
   */
  'sealed'?: (Buffer | Uint8Array | string);
}

export interface SecAggShare__Output {
  'from': (number);
  'to': (number);
  /**
   * Shares of the sender's self-mask seed and mask key, encrypted to the recipient.
   */
  'sealed': (Buffer);
}
