import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loraConfig } from '../../model/index.js';
import { loadProtos, loraConfigFromWire, loraConfigToWire, protoDir, trainingFromWire, trainingToWire, WireFormatError } from '../../proto/index.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
}

describe('proto (fedtune.v1 contract)', () => {
  it('the generated types are exactly what proto-loader-gen-types makes from the .proto files', () => {
    const out = mkdtempSync(join(tmpdir(), 'fedtune-gen-'));
    const script = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts['proto:gen'] as string;
    const args = script.split(' ').slice(1).map((a) => (a.startsWith('--outDir=') ? `--outDir=${out}` : a));
    const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'proto-loader-gen-types'), args, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const committed = join(ROOT, 'proto', 'generated');
    const want = files(out).map((f) => relative(out, f)).sort();
    assert.deepEqual(files(committed).map((f) => relative(committed, f)).sort(), want, 'run npm run proto:gen');
    for (const f of want) assert.equal(readFileSync(join(committed, f), 'utf8'), readFileSync(join(out, f), 'utf8'), `${f} is stale: run npm run proto:gen`);
  });

  it('LoRA and training configs survive the codec and real protobuf serialisation', () => {
    const { definition } = loadProtos();
    const m = (definition['fedtune.v1.Coordinator'] as Record<string, { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown }>).GetProgram;
    const lora = loraConfig({ rank: 4, alpha: 8, targets: ['wv', 'wq', 'w2'], dropout: 0.1, freezeA: true, seed: 12345 });
    const training = { steps: 30, batchSize: 8, seqLen: 64, lr: 0.004, weightDecay: 0, clipNorm: 1, quant: 'int8' as const };
    const wire = m.responseDeserialize(m.responseSerialize({ programId: 'p1', lora: loraConfigToWire(lora), training: trainingToWire(training) })) as {
      lora: Parameters<typeof loraConfigFromWire>[0];
      training: Parameters<typeof trainingFromWire>[0];
    };
    assert.deepEqual(loraConfigFromWire(wire.lora), lora);
    const back = trainingFromWire(wire.training);
    assert.equal(back.steps, 30);
    assert.equal(back.quant, 'int8');
    assert.ok(Math.abs((back.lr ?? 0) - 0.004) < 1e-12);
    assert.equal(back.timeBudgetMs, undefined);
  });

  it('refuses bad wire values with a sentence', () => {
    assert.throws(() => loraConfigFromWire({ rank: 4, alpha: 8, targets: ['wz'], dropout: 0, freezeA: false, seed: 0 }), (e: Error) => e instanceof WireFormatError && /unknown LoRA target "wz"/.test(e.message));
    assert.throws(() => loraConfigFromWire({ rank: 0, alpha: 8, targets: ['wq'], dropout: 0, freezeA: false, seed: 0 }), /rank must be a positive integer/);
    const ok = { steps: 1, batchSize: 1, seqLen: 1, lr: 1, weightDecay: 0, clipNorm: 1, timeBudgetMs: 0, quant: 'int8', replayFraction: 0, replayTokens: 0, proximalMu: 0, dataFormat: '' };
    assert.throws(() => trainingFromWire({ ...ok, lr: -1 }), /training.lr must be a finite number ≥ 0/);
    assert.throws(() => trainingFromWire({ ...ok, replayFraction: 1 }), /replayFraction must be in \[0, 1\)/);
    assert.throws(() => trainingFromWire(null), /missing/);
  });

  it('serves grpc.health.v1 over a real loopback socket', async () => {
    const { health } = loadProtos();
    const server = new grpc.Server();
    server.addService(health.grpc.health.v1.Health.service, {
      Check: (call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<{ status: string }>) => {
        if (call.request.service === '' || call.request.service === 'fedtune.v1.Coordinator') cb(null, { status: 'SERVING' });
        else cb({ code: grpc.status.NOT_FOUND, details: `unknown service "${call.request.service}"` });
      },
      Watch: (call: grpc.ServerWritableStream<unknown, unknown>) => call.end(),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const client = new health.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    const check = (service: string) =>
      new Promise<{ status?: string; code?: number; details?: string }>((resolve) =>
        client.Check({ service }, { deadline: Date.now() + 5000 }, (e, r) => resolve(e ? { code: e.code, details: e.details } : { status: r?.status })),
      );
    try {
      assert.deepEqual(await check('fedtune.v1.Coordinator'), { status: 'SERVING' });
      assert.deepEqual(await check('nope'), { code: grpc.status.NOT_FOUND, details: 'unknown service "nope"' });
    } finally {
      client.close();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    }
    assert.ok(protoDir().endsWith('proto'));
  });
});
