// Original file: proto/fedtune.proto


export interface SecAggShareValue {
  /**
   * Whose secret this is a share of.
   */
  'owner'?: (number);
  /**
   * The share's y (hex); its x is the sender's id.
   */
  'yHex'?: (string);
}

export interface SecAggShareValue__Output {
  /**
   * Whose secret this is a share of.
   */
  'owner': (number);
  /**
   * The share's y (hex); its x is the sender's id.
   */
  'yHex': (string);
}
