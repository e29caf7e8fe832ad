/**
 * Checks a message's bytes against the schema before it is decoded: every known field must
 * travel with the wire type its type uses (strings as valid UTF-8), recursively into embedded
 * messages. Unknown fields are skipped, as proto3 says. The schema is read from the descriptors
 * @grpc/proto-loader builds from proto/fedtune.proto.
 */
import type { PackageDefinition } from '@grpc/proto-loader';
import { WireFormatError } from './wire-error.js';
import { forEachField, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from './wire-scan.js';

interface FieldSchema {
  readonly name: string;
  readonly type: string;
  readonly repeated: boolean;
  /** Full name of the message type, for TYPE_MESSAGE. */
  readonly message?: string;
}

/** Message full name → field number → field. */
type Schema = ReadonlyMap<string, ReadonlyMap<number, FieldSchema>>;

const WIRE_OF: Readonly<Record<string, number>> = {
  TYPE_INT32: WIRE_VARINT, TYPE_INT64: WIRE_VARINT, TYPE_UINT32: WIRE_VARINT, TYPE_UINT64: WIRE_VARINT,
  TYPE_SINT32: WIRE_VARINT, TYPE_SINT64: WIRE_VARINT, TYPE_BOOL: WIRE_VARINT, TYPE_ENUM: WIRE_VARINT,
  TYPE_FIXED64: WIRE_I64, TYPE_SFIXED64: WIRE_I64, TYPE_DOUBLE: WIRE_I64,
  TYPE_FIXED32: WIRE_I32, TYPE_SFIXED32: WIRE_I32, TYPE_FLOAT: WIRE_I32,
  TYPE_STRING: WIRE_LEN, TYPE_BYTES: WIRE_LEN, TYPE_MESSAGE: WIRE_LEN,
};
const WIRE_NAME = ['varint', '64-bit', 'length-delimited', 'group start', 'group end', '32-bit'];
const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The schema of every message in a package definition. */
function schemaOf(definition: PackageDefinition): Schema {
  const schema = new Map<string, Map<number, FieldSchema>>();
  for (const [fullName, def] of Object.entries(definition)) {
    const d = def as { format?: string; type?: { field?: { name: string; number: number; label: string; type: string; typeName: string }[] } };
    if (d.format !== 'Protocol Buffer 3 DescriptorProto' || !d.type?.field) continue;
    const pkg = fullName.slice(0, fullName.lastIndexOf('.'));
    const fields = new Map<number, FieldSchema>();
    for (const f of d.type.field) {
      const typeName = f.typeName.startsWith('.') ? f.typeName.slice(1) : f.typeName && !f.typeName.includes('.') ? `${pkg}.${f.typeName}` : f.typeName;
      fields.set(f.number, { name: snake(f.name), type: f.type, repeated: f.label === 'LABEL_REPEATED', message: f.type === 'TYPE_MESSAGE' ? typeName : undefined });
    }
    schema.set(fullName, fields);
  }
  return schema;
}

/** A function that checks a message's bytes against message type `fullName`; WireFormatError names the field. */
export type WireChecker = (fullName: string, bytes: Uint8Array) => void;

/** Build the checker for a package definition (messages nested at most 32 deep). */
export function wireChecker(definition: PackageDefinition): WireChecker {
  const schema = schemaOf(definition);
  const check = (fullName: string, bytes: Uint8Array, path: string, depth: number): void => {
    const fields = schema.get(fullName);
    if (!fields) throw new RangeError(`wireChecker: unknown message type "${fullName}"`);
    if (depth > 32) throw new WireFormatError(`${path || 'the request'} nests messages more than 32 deep`);
    forEachField(bytes, (number, wireType, _start, end, valueStart) => {
      const f = fields.get(number);
      if (!f) return;
      const name = (): string => (path ? `${path}.${f.name}` : f.name);
      const want = WIRE_OF[f.type];
      const packed = f.repeated && want !== WIRE_LEN && wireType === WIRE_LEN;
      if (wireType !== want && !packed) {
        const kind = f.type.slice(5).toLowerCase();
        throw new WireFormatError(`field "${name()}" (number ${number}) arrived with wire type ${wireType} (${WIRE_NAME[wireType]}), but a ${kind} field travels as wire type ${want} (${WIRE_NAME[want]})`);
      }
      if (f.type === 'TYPE_MESSAGE' && f.message) check(f.message, bytes.subarray(valueStart, end), name(), depth + 1);
      else if (f.type === 'TYPE_STRING') {
        try {
          utf8.decode(bytes.subarray(valueStart, end));
        } catch {
          throw new WireFormatError(`field "${name()}" is not valid UTF-8`);
        }
      }
    });
  };
  return (fullName, bytes) => check(fullName, bytes, '', 0);
}
