/**
 * Interop from an independent stack: a Python device (test/interop/device.py, written from the
 * contract alone with Python's protobuf, grpcio and PyNaCl) runs against a real coordinator over
 * loopback, and its update must land in the next adapter version exactly, in the right layout.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { filter, firstValueFrom, timeout } from 'rxjs';
import { adapterTensorsFromFlat } from '../../model/index.js';
import { protoDir } from '../../proto/index.js';
import { startCoordinator, type RunningCoordinator } from '../../server/index.js';
import { smallProgram, TOKEN } from '../server/fixtures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Debian's python3 has python3-grpcio, -grpc-tools and -nacl; FEDTUNE_PYTHON overrides. */
const PYTHON = process.env.FEDTUNE_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('interop: a Python device from the contract alone', function () {
  this.timeout(180_000);
  let running: RunningCoordinator;
  const stubs = mkdtempSync(join(tmpdir(), 'fedtune-pystubs-'));

  before(async () => {
    const gen = spawnSync(PYTHON, ['-m', 'grpc_tools.protoc', `-I${protoDir()}`, `--python_out=${stubs}`, `--grpc_python_out=${stubs}`, join(protoDir(), 'fedtune.proto')], { encoding: 'utf8' });
    assert.equal(gen.status, 0, `${PYTHON} -m grpc_tools.protoc failed (install python3-grpcio python3-grpc-tools python3-nacl): ${gen.stderr ?? gen.error}`);
    running = await startCoordinator({
      dataDir: mkdtempSync(join(tmpdir(), 'fedtune-interop-')),
      port: 0,
      // one device, one update per round, plain FedAvg at lr 1, no DP, no compression: the new
      // adapter is the old one plus exactly the device's update
      programs: [
        smallProgram('py', {
          cohortSize: 1,
          minUpdates: 1,
          minContributors: 1,
          overSelect: 1,
          rounds: 1,
          compression: 'none',
          dp: { mode: 'none', clipNorm: 0 },
          serverOptimizer: { kind: 'fedavg', lr: 1 },
          lora: { rank: 4, alpha: 8, targets: ['wv', 'wq', 'w2'], seed: 5, freezeA: false },
        }),
      ],
    });
  });
  after(async () => {
    await running?.shutdown(500);
  });

  it('enrols with proof, downloads (resuming), checks in, and its sealed f32 update becomes adapter version 1', async () => {
    const p = running.coordinator.program('py');
    const before = p.runner.current();
    assert.equal(before.version, 0);
    const completed = firstValueFrom(p.runner.watch(0).pipe(filter((e) => e.state === 'COMPLETED' || e.state === 'FAILED'), timeout(150_000)));
    const r = await run([join(ROOT, 'test', 'interop', 'device.py'), `127.0.0.1:${running.port}`, 'py', TOKEN], { ...process.env, PYTHONPATH: stubs });
    assert.equal(r.code, 0, `the Python device failed:\n${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    assert.equal(out.replay, 'UNAUTHENTICATED', 'a signed WatchRounds replayed as CheckIn is refused');
    assert.equal(out.base_resumed_from, 2 * 64 * 1024, 'the base download was interrupted after two 64 KiB chunks and resumed');
    assert.equal(out.base_bytes, p.base.blob.size);
    assert.equal(out.update_length, p.updateLength);
    const event = await completed;
    assert.equal(event.state, 'COMPLETED', event.message);
    const after = p.runner.current();
    assert.equal(after.version, 1);
    const diff = after.global.map((v, i) => v - before.global[i]);
    const tensors = adapterTensorsFromFlat(p.base.config, p.spec.lora, diff);
    let checked = 0;
    for (const t of tensors) {
      const [, layerText, target, kind] = /^layers\.(\d+)\.(\w+)\.lora_(A|B)$/.exec(t.name) ?? [];
      assert.ok(target, t.name);
      const layer = Number(layerText);
      const [rows, cols] = t.shape;
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) {
          // A is [r, in]: (k, j); B is [out, r]: (o, k) — the formulas of device.py
          const want = kind === 'A' ? 1e-4 * (((2 * i + j + layer) % 3) - 1) : 1e-3 * (((i + 3 * j + layer) % 5) - 2);
          const got = t.data[i * cols + j];
          if (Math.abs(got - want) > 2e-6) assert.fail(`${t.name}[${i}, ${j}] moved by ${got}, the Python device sent ${want}`);
          checked++;
        }
    }
    assert.equal(checked, p.updateLength);
  });
});
