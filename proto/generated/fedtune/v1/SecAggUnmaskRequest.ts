// Original file: proto/fedtune.proto


export interface SecAggUnmaskRequest {
  'selfMaskOf'?: (number)[];
  'keyOf'?: (number)[];
}

export interface SecAggUnmaskRequest__Output {
  'selfMaskOf': (number)[];
  'keyOf': (number)[];
}
