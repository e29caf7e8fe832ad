/**
 * The SecAgg RPC: one unary call per stage, polled by each participant. A stage not yet open
 * answers `wait` with a delay; input accepted answers `accepted`.
 */
import type { SecAggRequest__Output } from '../proto/generated/fedtune/v1/SecAggRequest.js';
import type { SecAggResponse } from '../proto/generated/fedtune/v1/SecAggResponse.js';
import { advertFromWire, advertToWire, secAggParamsToWire, shareFromWire, shareToWire, unmaskFromWire, unmaskRequestToWire } from '../proto/secagg-codec.js';
import type { ProgramState } from './coordinator.js';
import { refuse } from './errors.js';
import type { StoredDevice } from './storage/index.js';

const WAIT_MS = 100;

/** Answer one SecAgg stage request of an authenticated device; `bytes` is the request's size on the wire (counted as upload). */
export function secAggStage(p: ProgramState, device: StoredDevice, req: SecAggRequest__Output, bytes: number): SecAggResponse {
  const round = p.runner.secAggRound(req.roundId);
  const wait = (what: string): SecAggResponse => ({ wait: { retryAfterMs: WAIT_MS, reason: `waiting for ${what}`, programComplete: false } });
  const mine = round.paramsFor(device.id);
  const myId = round.ids.get(device.id) ?? 0;
  switch (req.stage) {
    case 'getParams':
      return mine ? { params: secAggParamsToWire(mine.params, p.secAggBound), myId } : wait('the selection to close');
    case 'advertise':
      round.advertise(device.id, advertFromWire(req.advertise, req.roundId), bytes);
      return { accepted: true, myId };
    case 'getAdverts': {
      const a = round.adverts(device.id);
      return a ? { adverts: { adverts: a.adverts.map(advertToWire), signKeys: [...a.signKeys].map(([id, k]) => ({ id, publicKey: Buffer.from(k) })) }, myId } : wait('the key adverts');
    }
    case 'shareKeys':
      round.shareKeys(device.id, (req.shareKeys?.shares ?? []).map(shareFromWire), bytes);
      return { accepted: true, myId };
    case 'getShares': {
      const s = round.sharesFor(device.id);
      return s ? { shares: { shares: s.shares.map(shareToWire), senders: s.senders }, myId } : wait('the key shares');
    }
    case 'getUnmask': {
      const r = round.unmaskRequest(device.id);
      return r ? { unmaskRequest: unmaskRequestToWire(r), myId } : wait('the masked inputs');
    }
    case 'unmask':
      round.unmask(device.id, unmaskFromWire(req.unmask, myId), bytes);
      return { accepted: true, myId };
    default:
      return refuse('invalid-argument', 'a SecAgg request must name one stage');
  }
}
