/**
 * statusError (server/errors.ts): relaying another replica's answer gives the device exactly the
 * status that replica gave — every gRPC code a refusal can carry, checked against grpc-js's own
 * code table, and its sentence unchanged; a code no refusal carries becomes INTERNAL.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { statusError, toStatus } from '../../server/errors.js';

describe('server/errors statusError', () => {
  it('round-trips every code a refusal carries, with its sentence', () => {
    const codes = ['INVALID_ARGUMENT', 'UNAUTHENTICATED', 'PERMISSION_DENIED', 'NOT_FOUND', 'ALREADY_EXISTS', 'FAILED_PRECONDITION', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'OUT_OF_RANGE', 'UNAVAILABLE', 'INTERNAL'] as const;
    for (const name of codes) {
      const code = grpc.status[name];
      assert.deepEqual(toStatus(statusError(code, `why ${name}`)), { code, details: `why ${name}` });
    }
  });

  it('makes a code no refusal carries INTERNAL, and refuses a non-string sentence', () => {
    assert.equal(toStatus(statusError(grpc.status.DATA_LOSS, 'x')).code, grpc.status.INTERNAL);
    assert.throws(() => statusError(grpc.status.INTERNAL, 7 as unknown as string), (e: Error) => e instanceof TypeError && /statusError: details/.test(e.message));
  });
});
