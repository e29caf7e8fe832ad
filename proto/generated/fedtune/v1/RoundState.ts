// Original file: proto/fedtune.proto

export const RoundState = {
  ROUND_STATE_UNSPECIFIED: 'ROUND_STATE_UNSPECIFIED',
  ROUND_STATE_OPEN: 'ROUND_STATE_OPEN',
  ROUND_STATE_AGGREGATING: 'ROUND_STATE_AGGREGATING',
  ROUND_STATE_COMPLETED: 'ROUND_STATE_COMPLETED',
  ROUND_STATE_FAILED: 'ROUND_STATE_FAILED',
} as const;

export type RoundState =
  | 'ROUND_STATE_UNSPECIFIED'
  | 0
  | 'ROUND_STATE_OPEN'
  | 1
  | 'ROUND_STATE_AGGREGATING'
  | 2
  | 'ROUND_STATE_COMPLETED'
  | 3
  | 'ROUND_STATE_FAILED'
  | 4

export type RoundState__Output = typeof RoundState[keyof typeof RoundState]
