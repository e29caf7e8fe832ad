/** Wire ↔ domain conversion of the SecAgg stages (privacy/secagg types ↔ fedtune.v1 messages). */
import type { KeyAdvert, SecAggParams, ShareMessage, UnmaskRequest, UnmaskResponse } from '../privacy/secagg/index.js';
import type { Share } from '../privacy/secagg/shamir.js';
import type { SecAggKeyAdvert, SecAggKeyAdvert__Output } from './generated/fedtune/v1/SecAggKeyAdvert.js';
import type { SecAggParams as WireParams, SecAggParams__Output as WireParamsOut } from './generated/fedtune/v1/SecAggParams.js';
import type { SecAggShare, SecAggShare__Output } from './generated/fedtune/v1/SecAggShare.js';
import type { SecAggUnmask, SecAggUnmask__Output } from './generated/fedtune/v1/SecAggUnmask.js';
import { bytesFromWire, WireFormatError } from './wire-error.js';

/** Parameters → wire (with the clamp bound). */
export function secAggParamsToWire(p: SecAggParams, bound: number): WireParams {
  return { roundId: p.roundId, ids: [...p.ids], k: p.k, threshold: p.threshold, length: p.length, scale: p.scale, graphSeed: p.graphSeed, bound };
}

/** Wire → parameters and the clamp bound. */
export function secAggParamsFromWire(w: WireParamsOut | null | undefined): { params: SecAggParams; bound: number } {
  if (!w) throw new WireFormatError('the SecAgg parameters are missing');
  return { params: { roundId: w.roundId, ids: [...w.ids], k: w.k, threshold: w.threshold, length: w.length, scale: w.scale, graphSeed: Number(w.graphSeed) }, bound: w.bound };
}

/** Advert → wire. */
export function advertToWire(a: KeyAdvert): SecAggKeyAdvert {
  return { id: a.id, maskKey: Buffer.from(a.maskKey), shareKey: Buffer.from(a.shareKey), signature: Buffer.from(a.signature), selfMaskCommitment: Buffer.from(a.selfMaskCommitment ?? new Uint8Array(0)) };
}

/** Wire → advert for `roundId`. */
export function advertFromWire(w: SecAggKeyAdvert__Output | null | undefined, roundId: string): KeyAdvert {
  if (!w) throw new WireFormatError('the key advert is missing');
  // required on the wire: without it a false share at exactly `threshold` shares could shift a
  // rebuilt self-mask seed unnoticed, and a wrong sum would be published
  const commitment = bytesFromWire(w.selfMaskCommitment);
  if (commitment.length !== 32) throw new WireFormatError(`the key advert's self_mask_commitment must be 32 bytes (SHA-256), got ${commitment.length}`);
  return { id: w.id, roundId, maskKey: bytesFromWire(w.maskKey), shareKey: bytesFromWire(w.shareKey), signature: bytesFromWire(w.signature), selfMaskCommitment: commitment };
}

/** Share message ↔ wire. */
export function shareToWire(m: ShareMessage): SecAggShare {
  return { from: m.from, to: m.to, sealed: Buffer.from(m.sealed) };
}

/** Wire → share message. */
export function shareFromWire(w: SecAggShare__Output): ShareMessage {
  return { from: w.from, to: w.to, sealed: bytesFromWire(w.sealed) };
}

/** Unmask response → wire (share x values are the responder's id, implied). */
export function unmaskToWire(r: UnmaskResponse): SecAggUnmask {
  const list = (m: ReadonlyMap<number, Share>) => [...m].map(([owner, s]) => ({ owner, yHex: s.y.toString(16) }));
  return { selfMask: list(r.selfMask), key: list(r.key) };
}

/** Wire → unmask response from participant `from`. */
export function unmaskFromWire(w: SecAggUnmask__Output | null | undefined, from: number): UnmaskResponse {
  if (!w) throw new WireFormatError('the unmask response is missing');
  const map = (list: readonly { owner: number; yHex: string }[], what: string): Map<number, Share> => {
    const out = new Map<number, Share>();
    for (const v of list) {
      if (!Number.isSafeInteger(v.owner) || v.owner <= 0) throw new WireFormatError(`a ${what} share names owner ${v.owner}, not a participant id`);
      if (out.has(v.owner)) throw new WireFormatError(`two ${what} shares for owner ${v.owner}`);
      // a field element of GF(2^521 − 1) has at most 131 hex digits (the range is checked where shares are used)
      if (!/^[0-9a-f]{1,131}$/.test(v.yHex)) throw new WireFormatError(`the ${what} share for ${v.owner} is not a hex field element`);
      out.set(v.owner, { x: from, y: BigInt(`0x${v.yHex}`) });
    }
    return out;
  };
  return { from, selfMask: map(w.selfMask, 'self-mask'), key: map(w.key, 'key') };
}

/** Unmask request ↔ wire. */
export function unmaskRequestToWire(r: UnmaskRequest): { selfMaskOf: number[]; keyOf: number[] } {
  return { selfMaskOf: [...r.selfMaskOf], keyOf: [...r.keyOf] };
}
