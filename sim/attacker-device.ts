/**
 * A simulated attacker for robustness experiments (`fedtune simulate --attackers`): the real
 * Device, whose update pipeline sends −scale × its honest private update (a sign-flipping,
 * scaled model-poisoning attack) instead of the update itself. It composes the pipeline's stages
 * (client/build-update) with the attack in between; the shipped Device has no such hook.
 */
import { Device, type DeviceOptions } from '../client/device.js';
import { encodePrivateUpdate, privateUpdate, type BuiltUpdate, type UpdateInput } from '../client/build-update.js';

/** A device that sends −scale × what an honest device would (after its clip and noise, before quantization). */
export class SignFlippingDevice extends Device {
  /**
   * @param options as for {@link Device}
   * @param scale how much to amplify the flipped update; a positive finite number
   */
  constructor(
    options: DeviceOptions,
    readonly scale: number,
  ) {
    if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`SignFlippingDevice: scale must be a positive finite number, got ${scale}`);
    super(options);
  }

  protected override buildRoundUpdate(input: UpdateInput): BuiltUpdate {
    const honest = privateUpdate(input);
    return encodePrivateUpdate(input, { ...honest, values: honest.values.map((v) => -this.scale * v) });
  }
}
