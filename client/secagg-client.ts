/**
 * A device's side of a secure-aggregation round over the SecAgg RPC: get the round's
 * parameters, advertise signed keys, share secrets with neighbours, mask the (clipped, noised)
 * update — clamped to the round's bound and fixed-point encoded — upload it sealed with encoding
 * "masked", then reveal the shares the coordinator may ask for. Every stage is polled with
 * signed calls until the coordinator moves on.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Rng } from '../model/index.js';
import { SecAggDevice, type KeyAdvert } from '../privacy/secagg/index.js';
import type { CoordinatorClient } from '../proto/generated/fedtune/v1/Coordinator.js';
import type { SecAggRequest } from '../proto/generated/fedtune/v1/SecAggRequest.js';
import type { SecAggResponse__Output } from '../proto/generated/fedtune/v1/SecAggResponse.js';
import { advertFromWire, advertToWire, secAggParamsFromWire, shareFromWire, shareToWire, unmaskToWire } from '../proto/secagg-codec.js';
import { sleep, unaryCall } from './rpc.js';

/** What the SecAgg stages need from the device. */
export interface SecAggContext {
  readonly client: CoordinatorClient;
  readonly programId: string;
  readonly roundId: string;
  /** Adds signed auth to a request for method "SecAgg". */
  readonly sign: (req: SecAggRequest) => SecAggRequest;
  /** The device's 64-byte Ed25519 secret key (adverts are signed with it). */
  readonly signSecretKey: Uint8Array;
  readonly rng: Rng;
  readonly deadlineUnixMs: number;
  readonly rpcDeadlineMs: number;
  readonly signal?: AbortSignal;
  /** Told after each stage the device completes: params, advertised, shared, masked, unmasked. */
  readonly onStage?: (stage: string) => void;
}

async function call(ctx: SecAggContext, stage: Omit<SecAggRequest, 'auth' | 'programId' | 'roundId'>): Promise<SecAggResponse__Output> {
  const req = ctx.sign({ programId: ctx.programId, roundId: ctx.roundId, ...stage });
  return unaryCall<SecAggResponse__Output>((o, cb) => ctx.client.SecAgg(req, o, cb), ctx.rpcDeadlineMs);
}

/** Poll a stage until it answers with something other than `wait`. */
async function poll(ctx: SecAggContext, stage: Omit<SecAggRequest, 'auth' | 'programId' | 'roundId'>): Promise<SecAggResponse__Output> {
  for (;;) {
    if (ctx.signal?.aborted) throw new Error('aborted');
    if (Date.now() > ctx.deadlineUnixMs) throw Object.assign(new Error('deadline'), { code: 4 as grpc.status, details: `round ${ctx.roundId}'s deadline passed during secure aggregation` });
    const r = await call(ctx, stage);
    if (r.result !== 'wait') return r;
    await sleep(Math.max(20, Number(r.wait?.retryAfterMs ?? 100)), ctx.signal);
  }
}

/**
 * Run the device's stages, masking `update` (already clipped and noised). Resolves with the
 * masked input's plaintext once it is built; `upload` sends it; the unmask stage follows.
 */
export async function secAggRound(ctx: SecAggContext, update: Float32Array, upload: (masked: Uint32Array) => Promise<void>): Promise<void> {
  const p = await poll(ctx, { getParams: true });
  const { params, bound } = secAggParamsFromWire(p.params);
  const device = new SecAggDevice(p.myId, params, ctx.signSecretKey, ctx.rng);
  ctx.onStage?.('params');
  await call(ctx, { advertise: advertToWire(device.advertise()) });
  ctx.onStage?.('advertised');
  const a = await poll(ctx, { getAdverts: true });
  const adverts = new Map<number, KeyAdvert>((a.adverts?.adverts ?? []).map((w) => [w.id, advertFromWire(w, params.roundId)]));
  const signKeys = new Map<number, Uint8Array>((a.adverts?.signKeys ?? []).map((k) => [k.id, Uint8Array.from(k.publicKey)]));
  await call(ctx, { shareKeys: { shares: device.shareKeys(adverts, signKeys).map(shareToWire) } });
  ctx.onStage?.('shared');
  const s = await poll(ctx, { getShares: true });
  device.receiveShares((s.shares?.shares ?? []).map(shareFromWire), s.shares?.senders ?? []);
  const clamped = update.map((v) => Math.max(-bound, Math.min(bound, v)));
  await upload(device.maskedInput(clamped));
  ctx.onStage?.('masked');
  const u = await poll(ctx, { getUnmask: true });
  await call(ctx, { unmask: unmaskToWire(device.unmask({ selfMaskOf: u.unmaskRequest?.selfMaskOf ?? [], keyOf: u.unmaskRequest?.keyOf ?? [] })) });
  ctx.onStage?.('unmasked');
}
