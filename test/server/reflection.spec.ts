/**
 * Server reflection (grpc.reflection.v1, @grpc/reflection) as grpcurl uses it: a client that knows
 * only the reflection proto lists the services, fetches the file descriptors of the Coordinator
 * and Health services, builds clients from them and calls the API. And per-program health: one
 * service per program, `fedtune.v1.Coordinator/<id>`, whose Watch hears it go NOT_SERVING when the
 * program is done or the server drains.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { Subject } from 'rxjs';
import { HealthService, startCoordinator, type Coordinator, type RunningCoordinator } from '../../server/index.js';
import { programHealthName, trackProgramHealth } from '../../server/program-health.js';
import { smallProgram } from './fixtures.js';

type ReflectionResponse = {
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
};

/** The reflection proto, from the @grpc/reflection package (the client knows nothing else). */
function reflectionClient(address: string): grpc.Client & { ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionResponse> } {
  const pkgDir = dirname(createRequire(import.meta.url).resolve('@grpc/reflection/package.json'));
  const def = protoLoader.loadSync(join(pkgDir, 'build', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto'), { oneofs: true, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } };
  return new pkg.grpc.reflection.v1.ServerReflection(address, grpc.credentials.createInsecure()) as never;
}

/** One request on a reflection stream, its one answer. */
function ask(client: ReturnType<typeof reflectionClient>, request: object): Promise<ReflectionResponse> {
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo();
    call.once('data', (r: ReflectionResponse) => {
      resolve(r);
      call.end();
    });
    call.once('error', reject);
    call.write({ host: '', ...request });
  });
}

/** FileDescriptorProtos → an encoded FileDescriptorSet (field 1, repeated, length-delimited). */
function descriptorSet(files: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const len: number[] = [];
    let n = f.length;
    while (n > 0x7f) {
      len.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    len.push(n);
    parts.push(Buffer.from([0x0a, ...len]), f);
  }
  return Buffer.concat(parts);
}

describe('server: reflection lists and describes the API; per-program health', function () {
  this.timeout(30_000);
  let running: RunningCoordinator;
  let reflection: ReturnType<typeof reflectionClient>;

  beforeEach(async () => {
    running = await startCoordinator({ dataDir: mkdtempSync(join(tmpdir(), 'fedtune-refl-')), port: 0, drainMs: 300, programs: [smallProgram('oz', { cohortSize: 50, minUpdates: 50, overSelect: 2 }), smallProgram('tale')] });
    reflection = reflectionClient(running.address);
  });
  afterEach(async () => {
    reflection.close();
    await running.shutdown(500);
  });

  it('lists the Coordinator and Health services, and a client built from the reflected descriptors calls them', async () => {
    const list = await ask(reflection, { listServices: '' });
    const names = (list.listServicesResponse?.service ?? []).map((s) => s.name);
    for (const s of ['fedtune.v1.Coordinator', 'grpc.health.v1.Health']) assert.ok(names.includes(s), `${s} in ${names.join(', ')}`);

    const files = await ask(reflection, { fileContainingSymbol: 'fedtune.v1.Coordinator' });
    assert.ok(files.fileDescriptorResponse, JSON.stringify(files.errorResponse));
    const def = protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet(files.fileDescriptorResponse.fileDescriptorProto), { oneofs: true, defaults: true, longs: Number, enums: String });
    const svc = def['fedtune.v1.Coordinator'] as protoLoader.ServiceDefinition;
    assert.deepEqual(Object.keys(svc).sort(), ['CheckIn', 'DownloadBlob', 'Enroll', 'GetProgram', 'SecAgg', 'UploadUpdate', 'WatchRounds']);
    assert.equal(svc.WatchRounds.responseStream, true);
    assert.equal(svc.UploadUpdate.requestStream, true);
    // the RoundEvent message as reflected carries the server-side evaluation fields
    const fields = (def['fedtune.v1.RoundEvent'] as unknown as { type: unknown }).type as { field: { name: string; number: number }[] };
    assert.deepEqual(fields.field.filter((f) => f.number >= 15).map((f) => [f.number, f.name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())]), [[15, 'heldoutLoss'], [16, 'baseTextLoss']]);

    // call the Coordinator through the reflected schema: a wrong enrolment token is refused with its sentence
    const Coordinator = grpc.makeGenericClientConstructor(svc as grpc.ServiceDefinition, 'Coordinator');
    const coord = new Coordinator(running.address, grpc.credentials.createInsecure()) as unknown as Record<string, (req: object, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void> & grpc.Client;
    const refused = await new Promise<grpc.ServiceError>((resolve) => coord.Enroll({ programId: 'oz', enrolmentToken: 'wrong-token', signPublicKey: Buffer.alloc(32, 1), boxPublicKey: Buffer.alloc(32, 2), label: 'x' }, (e) => resolve(e as grpc.ServiceError)));
    coord.close();
    assert.equal(refused.code, grpc.status.PERMISSION_DENIED, refused.details);
    assert.match(refused.details, /enrolment token is wrong/);

    // and Health, also from its reflected descriptor
    const hf = await ask(reflection, { fileContainingSymbol: 'grpc.health.v1.Health' });
    const hdef = protoLoader.loadFileDescriptorSetFromBuffer(descriptorSet(hf.fileDescriptorResponse?.fileDescriptorProto ?? []), { enums: String, defaults: true });
    const Health = grpc.makeGenericClientConstructor(hdef['grpc.health.v1.Health'] as grpc.ServiceDefinition, 'Health');
    const health = new Health(running.address, grpc.credentials.createInsecure()) as unknown as Record<string, (req: object, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void) => void> & grpc.Client;
    const st = await new Promise<{ status: string } | undefined>((resolve, reject) => health.Check({ service: 'fedtune.v1.Coordinator/oz' }, (e, r) => (e ? reject(e) : resolve(r))));
    health.close();
    assert.equal(st?.status, 'SERVING');
  });

  it('each program has its health service; its Watch streams SERVING → NOT_SERVING when the server drains', async () => {
    assert.equal(running.health.status(programHealthName('oz')), 'SERVING');
    assert.equal(running.health.status(programHealthName('tale')), 'SERVING');
    assert.equal(running.health.status('fedtune.v1.Coordinator/nope'), undefined);
    const { health: h } = (await import('../../proto/index.js')).loadProtos();
    const client = new h.grpc.health.v1.Health(running.address, grpc.credentials.createInsecure());
    const seen: string[] = [];
    const call = client.Watch({ service: programHealthName('oz') });
    const ended = new Promise<number>((resolve) => call.on('status', (s: grpc.StatusObject) => resolve(s.code)));
    call.on('error', () => {});
    await new Promise<void>((resolve) => call.on('data', (m: { status: string }) => {
      seen.push(m.status);
      resolve();
    }));
    void running.shutdown(2000);
    assert.equal(await ended, grpc.status.OK);
    client.close();
    assert.deepEqual(seen, ['SERVING', 'NOT_SERVING']);
  });

  it('a program whose rounds are over turns NOT_SERVING while the others keep serving', () => {
    const done = new Subject<never>();
    const running$ = new Subject<never>();
    const fake = {
      programIds: () => ['a', 'b', 'c'],
      program: (id: string) => ({ runner: { done: id === 'c', events$: id === 'a' ? done : running$ } }),
    } as unknown as Coordinator;
    const health = new HealthService(['']);
    const stop = trackProgramHealth(health, fake);
    assert.deepEqual(['a', 'b', 'c'].map((p) => health.status(programHealthName(p))), ['SERVING', 'SERVING', 'NOT_SERVING']);
    done.complete();
    assert.deepEqual(['a', 'b', 'c'].map((p) => health.status(programHealthName(p))), ['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
    stop();
    assert.equal(health.status(''), 'SERVING');
    assert.throws(() => programHealthName(''), TypeError);
  });
});
