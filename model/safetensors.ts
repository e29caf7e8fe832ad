/**
 * The safetensors format (8-byte little-endian header length, JSON header padded with spaces to
 * 8 bytes as the reference implementation does, then raw little-endian tensor data): a general
 * writer and reader over raw bytes. adapter-file.ts builds fedtune's adapter files on it.
 */

/** Tensor dtypes this module writes and reads. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** One tensor: raw bytes of `dtype`, row-major `shape`. */
export interface SafetensorsTensor {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  readonly metadata: Record<string, string>;
  /** Tensors in data-offset order; `data` are views into the input bytes. */
  readonly tensors: SafetensorsTensor[];
}

/** A safetensors file that cannot be read. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Encode tensors (in the given order) and `__metadata__` (omitted when undefined) as safetensors bytes. */
export function encodeSafetensors(tensors: readonly SafetensorsTensor[], metadata?: Record<string, string>): Uint8Array {
  // a null-prototype object: a tensor named "__proto__" is a key like any other
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`encodeSafetensors: metadata "${k}" must be a string`);
    header.__metadata__ = Object.fromEntries(Object.entries(metadata));
  }
  let off = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || Object.hasOwn(header, t.name)) throw new TypeError(`encodeSafetensors: tensor name "${t.name}" is reserved or appears twice`);
    const size = DTYPE_BYTES[t.dtype];
    if (!size) throw new TypeError(`encodeSafetensors: tensor "${t.name}" has unsupported dtype ${String(t.dtype)}`);
    if (t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new RangeError(`encodeSafetensors: tensor "${t.name}" shape [${t.shape.join(', ')}] is not non-negative integers`);
    const want = t.shape.reduce((a, b) => a * b, 1) * size;
    if (want !== t.data.byteLength) throw new RangeError(`encodeSafetensors: tensor "${t.name}" shape [${t.shape.join(', ')}] needs ${want} bytes of ${t.dtype} but data has ${t.data.byteLength}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + want] };
    off += want;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let p = 8 + json.length;
  for (const t of tensors) {
    out.set(t.data, p);
    p += t.data.byteLength;
  }
  return out;
}

/**
 * The JSON header of safetensors bytes and its length n (the data starts at 8 + n); `bad` is
 * called with the reason when the bytes cannot hold one (and must throw).
 */
export function readSafetensorsHeader(bytes: Uint8Array, bad: (why: string) => never): { header: Record<string, unknown>; n: number } {
  if (bytes.byteLength < 8) bad('file too small');
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  if (n <= 0 || 8 + n > bytes.byteLength) bad(`header length ${n} does not fit in ${bytes.byteLength} bytes`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8')) as Record<string, unknown>;
  } catch {
    return bad('its header is not JSON');
  }
  return { header, n };
}

/** Parse safetensors bytes; every offset is checked against the data and the dtype/shape. */
export function parseSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const bad = (why: string): never => {
    throw new SafetensorsError(`${source} is not a readable safetensors file: ${why}`);
  };
  const { header, n } = readSafetensorsHeader(bytes, bad);
  if (header === null || typeof header !== 'object' || Array.isArray(header)) bad('its header is not a JSON object');
  const meta = header.__metadata__ ?? {};
  if (typeof meta !== 'object' || meta === null || Object.values(meta).some((v) => typeof v !== 'string')) bad('__metadata__ is not a map of strings');
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  const tensors: (SafetensorsTensor & { start: number })[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const t = (v ?? {}) as { dtype?: string; shape?: unknown; data_offsets?: unknown };
    const size = DTYPE_BYTES[t.dtype as SafetensorsDtype];
    if (!size) bad(`tensor "${name}" has dtype ${String(t.dtype)} (F32, F16, BF16 are read)`);
    const shape = t.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) bad(`tensor "${name}" has a bad shape`);
    const [s, e] = Array.isArray(t.data_offsets) ? (t.data_offsets as number[]) : [];
    const want = (shape as number[]).reduce((a, b) => a * b, 1) * size;
    if (!Number.isSafeInteger(s) || !Number.isSafeInteger(e) || s < 0 || e > dataLen || e - s !== want) bad(`tensor "${name}" has offsets [${s}, ${e}] inconsistent with ${t.dtype} [${String(shape)}]`);
    tensors.push({ name, dtype: t.dtype as SafetensorsDtype, shape: shape as number[], data: bytes.subarray(dataStart + s, dataStart + e), start: s });
  }
  tensors.sort((a, b) => a.start - b.start);
  return { metadata: { ...(meta as Record<string, string>) }, tensors: tensors.map(({ start: _s, ...t }) => t) };
}
