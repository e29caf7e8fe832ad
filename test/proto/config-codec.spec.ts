/**
 * training.dataFormat on the wire: the codec round trip through real protobuf serialisation, the
 * bytes checked against the protobuf encoding rules (TrainingConfig field 12, a length-delimited
 * string), and a bad value refused with a sentence.
 */
import assert from 'node:assert/strict';
import { loadProtos, trainingFromWire, trainingToWire, WireFormatError } from '../../proto/index.js';
import type { DeviceTraining } from '../../model/index.js';

type Serializer = { responseSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown };

/** Does `hay` contain `needle` as a contiguous byte run? */
function containsBytes(hay: Uint8Array, needle: readonly number[]): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe('proto: training.dataFormat in the config codec', () => {
  const getProgram = (loadProtos().definition['fedtune.v1.Coordinator'] as Record<string, Serializer>).GetProgram;
  const roundTrip = (t: DeviceTraining) => {
    const bytes = getProgram.responseSerialize({ programId: 'p', training: trainingToWire(t) });
    const wire = getProgram.responseDeserialize(bytes) as { training: Parameters<typeof trainingFromWire>[0] };
    return { bytes, back: trainingFromWire(wire.training) };
  };

  it('"chat" survives the codec and real protobuf serialisation as field 12, a length-delimited string', () => {
    const { bytes, back } = roundTrip({ steps: 4, quant: 'int8', dataFormat: 'chat' });
    assert.equal(back.dataFormat, 'chat');
    assert.equal(back.steps, 4);
    // key = (field 12 << 3) | wire type 2 = 0x62, then the length 4, then the UTF-8 bytes
    assert.ok(containsBytes(bytes, [0x62, 4, ...Buffer.from('chat')]), bytes.toString('hex'));
  });

  it('"text" is the default both ways; an empty (older coordinator) value reads as text', () => {
    assert.equal(roundTrip({ quant: 'none' }).back.dataFormat, 'text');
    assert.equal(roundTrip({ quant: 'none', dataFormat: 'text' }).back.dataFormat, 'text');
    const older = getProgram.responseDeserialize(getProgram.responseSerialize({ programId: 'p', training: { quant: 'int8' } })) as { training: Parameters<typeof trainingFromWire>[0] };
    assert.equal(older.training?.dataFormat, '');
    assert.equal(trainingFromWire(older.training).dataFormat, 'text');
  });

  it('an unknown data format is refused with a sentence naming it', () => {
    const ok = { steps: 1, batchSize: 1, seqLen: 2, lr: 1, weightDecay: 0, clipNorm: 1, timeBudgetMs: 0, quant: 'int8', replayFraction: 0, replayTokens: 0, proximalMu: 0, dataFormat: 'text' };
    assert.equal(trainingFromWire(ok).dataFormat, 'text');
    assert.throws(() => trainingFromWire({ ...ok, dataFormat: 'jsonl' }), (e: unknown) => e instanceof WireFormatError && /unknown training data format "jsonl"; expected one of text, chat/.test(e.message));
    assert.throws(() => trainingFromWire({ ...ok, dataFormat: 'Chat' }), WireFormatError);
  });
});
