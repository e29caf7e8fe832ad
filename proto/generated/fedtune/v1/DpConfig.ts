// Original file: proto/fedtune.proto


export interface DpConfig {
  /**
   * L2 bound on each device's update (C).
   */
  'clipNorm'?: (number | string);
  /**
   * Noise multiplier z: the noise std is z·C on the sum.
   */
  'noiseMultiplier'?: (number | string);
  /**
   * "none", "central", "local", "distributed".
   */
  'mode'?: (string);
}

export interface DpConfig__Output {
  /**
   * L2 bound on each device's update (C).
   */
  'clipNorm': (number);
  /**
   * Noise multiplier z: the noise std is z·C on the sum.
   */
  'noiseMultiplier': (number);
  /**
   * "none", "central", "local", "distributed".
   */
  'mode': (string);
}
