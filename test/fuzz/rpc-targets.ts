/**
 * Fuzzing every RPC of a real coordinator over a real loopback gRPC connection. A raw grpc-js
 * client with identity serializers sends bytes as they are: random bytes, well-shaped requests with
 * random field values signed by a real enrolled device, and mutants of those (flipped bytes,
 * truncation, extension, wrong wire types, huge lengths). Every call must end within its deadline
 * with a proper gRPC status; the coordinator must stay up and keep answering.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { authFor, enrollRequestFor } from '../../client/rpc.js';
import { defaultModelDir } from '../../model/paths.js';
import { loadProtos } from '../../proto/load.js';
import { applyMutations, mutationStep, type Mutation } from './mutate.js';

/** The enrolment token of the fuzzed coordinator's programs. */
export const FUZZ_TOKEN = 'fuzz-partner-token';
const SERVICE = 'fedtune.v1.Coordinator';

/** Programs of the fuzzed coordinator: a plain one whose round stays open, and a SecAgg one whose phases end quickly. */
export function writeFuzzConfig(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const m = defaultModelDir();
  const common = { base: join(m, 'stories260K.bin'), tokenizer: join(m, 'tok512.bin'), enrolmentToken: FUZZ_TOKEN, lora: { rank: 2, targets: ['wq'], seed: 1 }, training: { steps: 1, batchSize: 1, seqLen: 16, lr: 1e-3 }, overSelect: 1, rounds: 2 };
  const programs = [
    { ...common, id: 'oz', cohortSize: 1000, minUpdates: 1000, roundDeadlineMs: 3_600_000, dp: { clipNorm: 0.5 } },
    { ...common, id: 'sa', cohortSize: 4, minUpdates: 3, roundDeadlineMs: 2000, retryDelayMs: 50, dp: { clipNorm: 0.5 }, secagg: { phaseTimeoutMs: 500 } },
  ];
  const path = join(dir, 'fuzz-programs.json');
  writeFileSync(path, JSON.stringify({ programs }));
  return path;
}

interface MethodDef {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestSerialize(v: unknown): Buffer;
  requestDeserialize(b: Buffer): Record<string, unknown>;
}

/** An enrolled fuzz device. */
interface FuzzDevice {
  readonly programId: string;
  readonly deviceId: string;
  readonly sign: nacl.SignKeyPair;
  roundId: string;
}

/** What one case sends. Signing happens when the case runs (fresh nonce and time). */
export type RpcPlan =
  | { readonly kind: 'raw'; readonly method: string; readonly messages: readonly Uint8Array[] }
  | { readonly kind: 'shaped'; readonly method: string; readonly device: number; readonly signed: boolean; readonly fields: Record<string, unknown>; readonly chunks: readonly Uint8Array[]; readonly mutations: readonly Mutation[] };

/** How one call ended. */
export interface RpcOutcome {
  readonly method: string;
  readonly code: number;
  readonly details: string;
  readonly ms: number;
  /** Response messages received (server streams). */
  readonly messages: number;
  /** ok: a proper status; hang: the client's deadline ran out; open: a watch stream still open at its deadline;
   *  deserialize-internal: grpc-js's own INTERNAL for bytes that are not a message; bad-status: UNKNOWN, INTERNAL or UNAVAILABLE otherwise. */
  readonly verdict: 'ok' | 'hang' | 'open' | 'deserialize-internal' | 'bad-status';
}

/** Client deadline per call; a server that has not answered by then counts as a hang. */
export const CALL_DEADLINE_MS = 8000;
/** WatchRounds streams stay open by design: this long, then the client ends them. */
export const WATCH_MS = 600;

const text = fc.oneof(fc.constantFrom('', 'oz', 'sa', 'oz.r1.a1', 'sa.r1.a1', 'f32', 'q8', 'q4', 'masked', 'bf16', FUZZ_TOKEN), fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 12 }));
const int64 = fc.oneof(fc.constantFrom(0, 1, -1, 2 ** 31, -(2 ** 31), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER), fc.integer({ min: -1000, max: 1_000_000 }));
const int32 = fc.oneof(fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31)), fc.integer({ min: -100, max: 5_000_000 }));
const bytes = (max = 80) => fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: max })).map((b) => Buffer.from(b));
const hex = fc.oneof(fc.constantFrom('', '0'.repeat(64)), fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 64, maxLength: 64 }), fc.string({ maxLength: 70 }));

/** Stand-ins replaced, when a case runs, by the signing device's program and the round it was given at setup. */
const OWN_PROGRAM = '\u0000own-program';
const OWN_ROUND = '\u0000own-round';

/** Field arbitraries per method (the auth field is added when the case runs). */
function fieldsOf(method: string, shas: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  // mostly the signing device's own program and round (so cases get past those checks), else anything
  const programId = fc.oneof({ weight: 3, arbitrary: fc.constant(OWN_PROGRAM) }, { weight: 1, arbitrary: text });
  const roundId = fc.oneof({ weight: 3, arbitrary: fc.constant(OWN_ROUND) }, { weight: 1, arbitrary: text });
  switch (method) {
    case 'Enroll':
      return fc.record({ programId, enrolmentToken: text, signPublicKey: bytes(), boxPublicKey: bytes(), label: text });
    case 'GetProgram':
      return fc.record({ programId });
    case 'DownloadBlob':
      return fc.record({ sha256: fc.oneof(fc.constantFrom(...shas), hex), offset: int64, maxChunkBytes: int32 });
    case 'CheckIn':
      return fc.record({ programId, adapterVersion: int64 });
    case 'UploadUpdate':
      return fc.record({ programId, roundId, numExamples: int64, payloadBytes: fc.oneof(int64, fc.integer({ min: 0, max: 20_000 })), payloadSha256: hex, encoding: text, unclipped: fc.boolean() });
    case 'WatchRounds':
      return fc.record({ programId, afterRound: int64 });
    case 'SecAgg': {
      const advert = fc.record({ id: int32, maskKey: bytes(), shareKey: bytes(), signature: bytes(80) });
      const share = fc.record({ from: int32, to: int32, sealed: bytes(200) });
      const value = fc.record({ owner: int32, yHex: hex });
      const stage = fc.oneof(
        fc.constantFrom({ getParams: true }, { getAdverts: true }, { getShares: true }, { getUnmask: true }, {}),
        advert.map((advertise) => ({ advertise })),
        fc.array(share, { maxLength: 6 }).map((shares) => ({ shareKeys: { shares } })),
        fc.record({ selfMask: fc.array(value, { maxLength: 4 }), key: fc.array(value, { maxLength: 4 }) }).map((unmask) => ({ unmask })),
      );
      return fc.tuple(fc.record({ programId, roundId }), stage).map(([a, s]) => ({ ...a, ...s }));
    }
    default:
      throw new RangeError(`fieldsOf: no fields for ${method}`);
  }
}

/** A fuzzer bound to one running coordinator. */
export class RpcFuzzer {
  readonly methods: Record<string, MethodDef>;
  private readonly raw: grpc.Client;
  private readonly health: InstanceType<ReturnType<typeof loadProtos>['health']['grpc']['health']['v1']['Health']>;
  private devices: FuzzDevice[] = [];
  private shas: string[] = [];

  /** The blobs the coordinator serves (base, tokenizer, adapter), learnt at setup. */
  get blobShas(): readonly string[] {
    return this.shas;
  }

  constructor(readonly address: string) {
    const { definition, health } = loadProtos();
    this.methods = definition[SERVICE] as unknown as Record<string, MethodDef>;
    this.raw = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
    this.health = new health.grpc.health.v1.Health(address, grpc.credentials.createInsecure());
  }

  /** Method names of the service. */
  get methodNames(): string[] {
    return Object.keys(this.methods);
  }

  /** Enroll a few devices per program (real, valid requests) and learn the blob names, so shaped cases reach past authentication. */
  async setup(): Promise<void> {
    const { fedtune } = loadProtos();
    const typed = new fedtune.fedtune.v1.Coordinator(this.address, grpc.credentials.createInsecure());
    try {
      for (const programId of ['oz', 'oz', 'sa', 'sa']) {
        const sign = nacl.sign.keyPair();
        const box = nacl.box.keyPair();
        const res = await new Promise<{ deviceId: string }>((resolve, reject) =>
          typed.Enroll(enrollRequestFor(programId, FUZZ_TOKEN, sign, box.publicKey, 'fuzz'), { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r as { deviceId: string }))),
        );
        const d: FuzzDevice = { programId, deviceId: res.deviceId, sign, roundId: '' };
        this.devices.push(d);
        const req = { programId };
        const cfg = await new Promise<{ base?: { sha256: string } | null; adapter?: { sha256: string } | null; tokenizer?: { sha256: string } | null }>((resolve, reject) =>
          typed.GetProgram({ ...req, auth: authFor(`${SERVICE}/GetProgram`, req, d.deviceId, sign) }, { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r as never))),
        );
        for (const b of [cfg.base, cfg.adapter, cfg.tokenizer]) if (b?.sha256 && !this.shas.includes(b.sha256)) this.shas.push(b.sha256);
        // a check-in selects the device into the open round, so uploads and SecAgg stages can reach their checks
        const ci = { programId, adapterVersion: 0 };
        await new Promise<void>((resolve) =>
          typed.CheckIn({ ...ci, auth: authFor(`${SERVICE}/CheckIn`, ci, d.deviceId, sign) }, { deadline: Date.now() + 5000 }, (_e, r) => {
            d.roundId = r?.work?.roundId ?? '';
            resolve();
          }),
        );
      }
    } finally {
      typed.close();
    }
  }

  /** Arbitrary case plans for one method. */
  plans(method: string): fc.Arbitrary<RpcPlan> {
    const def = this.methods[method];
    const raw = fc.array(fc.uint8Array({ maxLength: 600 }), { minLength: def.requestStream ? 0 : 1, maxLength: def.requestStream ? 4 : 1 }).map((messages): RpcPlan => ({ kind: 'raw', method, messages }));
    const shaped = fc
      .record({
        device: fc.nat({ max: this.devices.length - 1 }),
        signed: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
        fields: fieldsOf(method, this.shas.length ? this.shas : ['0'.repeat(64)]),
        chunks: def.requestStream ? fc.array(fc.oneof(fc.uint8Array({ maxLength: 2000 }), fc.nat({ max: 20_000 }).map((n) => new Uint8Array(n))), { maxLength: 3 }) : fc.constant([]),
        mutations: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 3, arbitrary: fc.array(mutationStep, { minLength: 1, maxLength: 3 }) }),
      })
      .map((p): RpcPlan => ({ kind: 'shaped', method, ...p }));
    return fc.oneof({ weight: 1, arbitrary: raw }, { weight: 3, arbitrary: shaped });
  }

  /** The messages a plan sends, as bytes (signed now). */
  encode(plan: RpcPlan): Buffer[] {
    if (plan.kind === 'raw') return plan.messages.map((m) => Buffer.from(m));
    const def = this.methods[plan.method];
    const d = this.devices[plan.device];
    const path = `${SERVICE}/${plan.method}`;
    const fields = Object.fromEntries(Object.entries(plan.fields).map(([k, v]) => [k, v === OWN_PROGRAM ? d.programId : v === OWN_ROUND ? d.roundId : v]));
    if (plan.method === 'UploadUpdate') {
      const header = fields;
      const signedHeader = plan.signed ? { ...header, auth: authFor(path, { header }, d.deviceId, d.sign, ownProgramUnlessNamed(header, d)) } : header;
      const first = applyMutations(def.requestSerialize({ header: signedHeader }), plan.mutations);
      return [Buffer.from(first), ...plan.chunks.map((c) => def.requestSerialize({ data: Buffer.from(c) }))];
    }
    const req = plan.method === 'Enroll' || !plan.signed ? fields : { ...fields, auth: authFor(path, fields, d.deviceId, d.sign, ownProgramUnlessNamed(fields, d)) };
    return [Buffer.from(applyMutations(def.requestSerialize(req), plan.mutations))];
  }

  /** Run one case over the wire and classify how it ended. */
  call(plan: RpcPlan): Promise<RpcOutcome> {
    const def = this.methods[plan.method];
    const msgs = this.encode(plan);
    const id = (x: Buffer): Buffer => x;
    const watch = plan.method === 'WatchRounds';
    const deadline = Date.now() + (watch ? WATCH_MS : CALL_DEADLINE_MS);
    const t0 = performance.now();
    const decodable = msgs.every((m) => {
      try {
        def.requestDeserialize(m);
        return true;
      } catch {
        return false;
      }
    });
    return new Promise<{ code: number; details: string; data: number }>((resolve) => {
      let data = 0;
      const done = (e: grpc.ServiceError | null): void => resolve({ code: e ? e.code : grpc.status.OK, details: e ? e.details : '', data });
      if (!def.requestStream && !def.responseStream) {
        this.raw.makeUnaryRequest(def.path, id, id, msgs[0], { deadline }, (e) => done(e));
      } else if (def.requestStream) {
        const call = this.raw.makeClientStreamRequest(def.path, id, id, { deadline }, (e) => done(e));
        call.on('error', () => undefined);
        for (const m of msgs) call.write(m);
        call.end();
      } else {
        const call = this.raw.makeServerStreamRequest(def.path, id, id, msgs[0], { deadline });
        call.on('data', () => data++);
        call.on('error', (e: grpc.ServiceError) => done(e));
        call.on('status', (s: grpc.StatusObject) => s.code === grpc.status.OK && done(null));
      }
    }).then(({ code, details, data }): RpcOutcome => {
      const ms = performance.now() - t0;
      const clientDeadline = code === grpc.status.DEADLINE_EXCEEDED && /^Deadline exceeded/.test(details);
      let verdict: RpcOutcome['verdict'] = 'ok';
      if (clientDeadline) verdict = watch ? 'open' : 'hang';
      else if (code === grpc.status.INTERNAL && !decodable && /^Error deserializing request/.test(details)) verdict = 'deserialize-internal';
      else if (code === grpc.status.UNKNOWN || code === grpc.status.INTERNAL || code === grpc.status.UNAVAILABLE) verdict = 'bad-status';
      return { method: plan.method, code, details, ms, messages: data, verdict };
    });
  }

  /** True if the coordinator answers a health check with SERVING. */
  serving(): Promise<boolean> {
    return new Promise((resolve) => this.health.Check({ service: SERVICE }, { deadline: Date.now() + 5000 }, (e, r) => resolve(!e && r?.status === 'SERVING')));
  }

  close(): void {
    this.raw.close();
    this.health.close();
  }
}

/** Name of a status code. */
export function statusName(code: number): string {
  return (grpc.status as unknown as Record<number, string>)[code] ?? String(code);
}

/** Sign as a correct client would: for the program the request names, else (DownloadBlob, or a case without one) the device's own. */
function ownProgramUnlessNamed(fields: Record<string, unknown>, d: FuzzDevice): { programId?: string } {
  return typeof fields.programId === 'string' ? {} : { programId: d.programId };
}
