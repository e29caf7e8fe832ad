// Original file: proto/fedtune.proto


export interface SecAggSignKey {
  'id'?: (number);
  'publicKey'?: (Buffer | Uint8Array | string);
}

export interface SecAggSignKey__Output {
  'id': (number);
  'publicKey': (Buffer);
}
