/**
 * A program's signed adapter releases on the coordinator. Every adapter version gets a release
 * manifest (proto/release.ts) with a strictly increasing sequence number, written in the same
 * transaction as the version. With `release.signing: "coordinator"` the program's Ed25519 release
 * key lives in the store and signs at once; with `"offline"` the store holds only the public key,
 * the release waits unsigned, and the program opens no further round until a partner's signature
 * arrives through the inbox. A rollback is a release of kind "rollback" naming an older version
 * with the next sequence number; it arrives through the inbox too (signed, for offline programs).
 *
 * Files under `<data>/releases/` (readable while the coordinator runs, which holds its SQLite file
 * exclusively): `<program>/<sequence>-v<version>.release.json` mirrors every release (an empty
 * signature while one is awaited), and `inbox/` takes submitted files (`fedtune release submit`,
 * `fedtune release rollback`); each is moved to `inbox/done/` or `inbox/refused/` (with a `.why`).
 */
import { closeSync, constants as fsConstants, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { encodeManifest, parseManifest, parseReleaseFile, ReleaseError, releaseFileText, signManifest, verifyRelease, type ReleaseManifest, type SignedRelease } from '../proto/release.js';
import type { ProgramSpec } from './program-config.js';
import type { StateStore, StoredRelease, StoredReleaseKey, StoredVersion } from './storage/index.js';

/** The folder of release files in a coordinator's data dir. */
export const RELEASES_DIR = 'releases';
/** The inbox folder (under {@link RELEASES_DIR}). */
export const INBOX_DIR = 'inbox';

/** The name of a release's mirror file in `<data>/releases/<program>/`. */
export function releaseFileName(sequence: number, version: number): string {
  return `${String(sequence).padStart(6, '0')}-v${version}.release.json`;
}

/** How a program aggregates, as a manifest names it (e.g. "fedavg+fedadam", "trimmed-mean", "fedavg+secagg"). */
export function aggregationName(spec: ProgramSpec): string {
  if (spec.secagg) return 'fedavg+secagg';
  const rule = spec.robust ? spec.robust.rule : spec.aggregation;
  return spec.serverOptimizer.kind === 'fedavg' ? rule : `${rule}+${spec.serverOptimizer.kind}`;
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** A program's releases: its key, the next manifest, signatures, rollbacks, the mirror files. */
export class ProgramReleases {
  readonly key: StoredReleaseKey;
  private readonly dir: string;

  /** The program's releases in sequence order (mirrored from the store: every write goes through mirror()). */
  private readonly list: StoredRelease[];

  private constructor(
    private readonly spec: ProgramSpec,
    private readonly store: StateStore,
    private readonly baseSha256: string,
    dataDir: string,
    key: StoredReleaseKey,
    stored: readonly StoredRelease[],
  ) {
    this.key = key;
    this.list = [];
    this.dir = join(dataDir, RELEASES_DIR, spec.id);
    mkdirSync(this.dir, { recursive: true });
    for (const r of stored) this.mirror(r);
  }

  /**
   * Load or create the program's release key (a coordinator-held one is generated once; an
   * offline one comes from the config and may not change: devices pinned it), and its releases.
   */
  static async load(spec: ProgramSpec, store: StateStore, baseSha256: string, dataDir: string): Promise<ProgramReleases> {
    const stored = await store.releaseKey(spec.id);
    const wanted = spec.release;
    let key: StoredReleaseKey;
    if (stored) {
      const storedHex = Buffer.from(stored.publicKey).toString('hex');
      if (stored.signing !== wanted.signing || (wanted.signing === 'offline' && storedHex !== wanted.publicKey)) {
        throw new RangeError(`program "${spec.id}": its release key was ${stored.signing} ${storedHex.slice(0, 12)}… when its devices enrolled, the config now says ${wanted.signing}${wanted.publicKey ? ` ${wanted.publicKey.slice(0, 12)}…` : ''}; devices pin the key, so use a new program id`);
      }
      key = stored;
    } else {
      if (wanted.signing === 'coordinator') {
        const kp = nacl.sign.keyPair();
        key = { signing: 'coordinator', publicKey: kp.publicKey, secretKey: kp.secretKey };
      } else key = { signing: 'offline', publicKey: Uint8Array.from(Buffer.from(wanted.publicKey, 'hex')) };
      await store.setReleaseKey(spec.id, key);
    }
    return new ProgramReleases(spec, store, baseSha256, dataDir, key, await store.releases(spec.id));
  }

  /** Read the program's releases again (another replica may have added some). */
  async reload(): Promise<void> {
    for (const r of await this.store.releases(this.spec.id)) this.mirror(r);
  }

  /** Every release of the program, in sequence order. */
  all(): StoredRelease[] {
    return [...this.list];
  }

  /** The newest signed release (what devices get), if any. */
  published(): StoredRelease | undefined {
    for (let i = this.list.length - 1; i >= 0; i--) if (this.list[i].signature.length > 0) return this.list[i];
    return undefined;
  }

  /** The newest release, signed or not: its version is the program's current adapter. */
  newest(): StoredRelease | undefined {
    return this.list[this.list.length - 1];
  }

  /** Why the program may not open a round: its newest release awaits its offline signature. */
  awaiting(): string | undefined {
    const n = this.newest();
    if (n && n.signature.length === 0) return `release ${n.sequence} (adapter version ${n.version}) of program ${this.spec.id} awaits its offline signature (fedtune release sign, then fedtune release submit)`;
    return undefined;
  }

  /** The manifest of a new release of `v` (signed now when the coordinator holds the key). */
  forVersion(v: StoredVersion, kind: 'version' | 'rollback', epsilon: number, now = Date.now()): StoredRelease {
    const sequence = (this.newest()?.sequence ?? 0) + 1;
    const l = this.spec.lora;
    const m: ReleaseManifest = {
      program: this.spec.id,
      sequence,
      kind,
      version: v.version,
      round: v.roundNumber,
      baseSha256: this.baseSha256,
      adapterSha256: v.sha256,
      adapterBytes: v.sizeBytes,
      lora: { rank: l.rank, alpha: l.alpha, targets: [...l.targets], dropout: l.dropout, freezeA: l.freezeA, seed: l.seed },
      epsilon: Number.isFinite(epsilon) ? epsilon : 0,
      delta: this.spec.dp.mode === 'none' ? 0 : this.spec.dp.delta,
      aggregation: aggregationName(this.spec),
      timestampMs: now,
    };
    const manifest = encodeManifest(m);
    const signature = this.key.secretKey ? signManifest(manifest, this.key.secretKey) : new Uint8Array(0);
    return { programId: this.spec.id, sequence, version: v.version, kind, manifest, signature };
  }

  /** Take a release the store now holds into the in-memory list and write its mirror file. */
  mirror(r: StoredRelease): void {
    const at = this.list.findIndex((x) => x.sequence === r.sequence);
    if (at >= 0) this.list[at] = r;
    else {
      this.list.push(r);
      this.list.sort((a, b) => a.sequence - b.sequence);
    }
    writeAtomic(join(this.dir, releaseFileName(r.sequence, r.version)), releaseFileText(r));
  }

  /**
   * A submitted release: the offline signature of the release that awaits one, or a rollback.
   * Returns the stored release (a rollback: not yet stored — the caller adds it with the round
   * state it resets); ReleaseError with the reason otherwise.
   */
  async submitted(s: SignedRelease, epsilon: number): Promise<{ readonly release: StoredRelease; readonly rollbackTo?: StoredVersion }> {
    const m = parseManifest(s.manifest);
    if (m.program !== this.spec.id) throw new ReleaseError(`the release is for program "${m.program}", not "${this.spec.id}"`);
    const newest = this.newest();
    if (newest && newest.signature.length === 0 && newest.sequence === m.sequence) {
      if (Buffer.compare(Buffer.from(newest.manifest), Buffer.from(s.manifest)) !== 0) throw new ReleaseError(`the signed manifest is not the manifest of release ${newest.sequence} that awaits a signature`);
      verifyRelease(s, this.key.publicKey);
      await this.store.signRelease(this.spec.id, m.sequence, s.signature);
      const rel = { ...newest, signature: s.signature };
      this.mirror(rel);
      return { release: rel };
    }
    if (m.kind !== 'rollback') throw new ReleaseError(`release ${m.sequence} is neither the release awaiting a signature${newest?.signature.length === 0 ? ` (${newest.sequence})` : ' (none awaits one)'} nor a rollback`);
    if (this.awaiting()) throw new ReleaseError(`a rollback cannot be published while ${this.awaiting()}`);
    const next = (newest?.sequence ?? 0) + 1;
    if (m.sequence !== next) throw new ReleaseError(`the rollback's sequence is ${m.sequence}, but the program's next release is ${next}`);
    const target = await this.store.version(this.spec.id, m.version);
    if (!target) throw new ReleaseError(`program ${this.spec.id} has no adapter version ${m.version} to roll back to`);
    if (newest && newest.version === m.version) throw new ReleaseError(`adapter version ${m.version} is already the program's current version`);
    if (target.sha256 !== m.adapterSha256 || target.sizeBytes !== m.adapterBytes || m.baseSha256 !== this.baseSha256 || m.round !== target.roundNumber) {
      throw new ReleaseError(`the rollback manifest's base, adapter or round are not those of version ${m.version}`);
    }
    let release: StoredRelease;
    if (this.key.secretKey) {
      // the coordinator signs its own rollback manifest (any submitted signature is replaced)
      release = this.forVersion(target, 'rollback', epsilon);
    } else {
      verifyRelease(s, this.key.publicKey);
      release = { programId: this.spec.id, sequence: m.sequence, version: m.version, kind: 'rollback', manifest: s.manifest, signature: s.signature };
    }
    return { release, rollbackTo: target };
  }
}

/** Largest inbox file read (a release file is a few kilobytes); larger ones are refused unread. */
export const MAX_INBOX_FILE_BYTES = 1 << 20;

/** One inbox file, as the coordinator found it. */
export interface InboxFile {
  readonly name: string;
  /** Its text; empty when it could not be taken (see `problem`). */
  readonly text: string;
  /** Why the entry cannot be read as a release file (not a regular file, too large, unreadable); undefined when `text` holds it. */
  readonly problem?: string;
}

const KIND_OF = (st: Stats): string =>
  st.isDirectory() ? 'a directory' : st.isSymbolicLink() ? 'a symbolic link' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'not a regular file';

/**
 * One inbox entry, read without following links or blocking (a FIFO, a device or a link to one
 * would stall the coordinator) and at most {@link MAX_INBOX_FILE_BYTES} bytes of it.
 */
function readInboxEntry(dir: string, name: string): InboxFile {
  const path = join(dir, name);
  const refuse = (problem: string): InboxFile => ({ name, text: '', problem: `inbox entry ${name} ${problem}; submit a release file made by \`fedtune release\`` });
  let fd: number;
  try {
    const st = lstatSync(path);
    if (!st.isFile()) return refuse(`is ${KIND_OF(st)}, not a regular file`);
    if (st.size > MAX_INBOX_FILE_BYTES) return refuse(`has ${st.size} bytes, more than the ${MAX_INBOX_FILE_BYTES} a release file may have`);
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (e) {
    return refuse(`cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(fd); // what was opened, should the entry have been swapped since lstat
    if (!st.isFile()) return refuse(`is ${KIND_OF(st)}, not a regular file`);
    const buf = Buffer.alloc(MAX_INBOX_FILE_BYTES + 1);
    let got = 0;
    for (let k; got < buf.length && (k = readSync(fd, buf, got, buf.length - got, got)) > 0; ) got += k;
    if (got > MAX_INBOX_FILE_BYTES) return refuse(`has more than the ${MAX_INBOX_FILE_BYTES} bytes a release file may have`);
    return { name, text: buf.subarray(0, got).toString('utf8') };
  } catch (e) {
    return refuse(`cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    closeSync(fd);
  }
}

/**
 * The `.json` entries waiting in a data dir's release inbox (created if missing), oldest name
 * first. An entry that is not a regular file, is larger than {@link MAX_INBOX_FILE_BYTES} or
 * cannot be read comes with a `problem` (to be refused), so it never blocks the others.
 */
export function readInbox(dataDir: string): InboxFile[] {
  const dir = join(dataDir, RELEASES_DIR, INBOX_DIR);
  mkdirSync(dir, { recursive: true });
  return readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((name) => readInboxEntry(dir, name));
}

/**
 * Move an inbox entry to `done/` or to `refused/` with a `.why` holding the sentence. A name
 * already settled there gets a numbered suffix (a replayed file never overwrites, nor blocks).
 */
export function settleInbox(dataDir: string, name: string, why?: string): void {
  const dir = join(dataDir, RELEASES_DIR, INBOX_DIR);
  const to = join(dir, why === undefined ? 'done' : 'refused');
  mkdirSync(to, { recursive: true });
  const src = join(dir, name);
  if (!lstatExists(src)) return;
  let target = name;
  for (let i = 1; lstatExists(join(to, target)) || lstatExists(join(to, `${target}.why`)); i++) target = `${name}.${i}`;
  renameSync(src, join(to, target));
  if (why !== undefined) writeFileSync(join(to, `${target}.why`), `${why}\n`);
}

/** Whether a directory entry exists (a dangling link counts). */
function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The releases of a program as its mirror files in a coordinator's data dir hold them, in sequence order. */
export function releasesOnDisk(dataDir: string, programId: string): { file: string; release: SignedRelease; manifest: ReleaseManifest }[] {
  const dir = join(dataDir, RELEASES_DIR, programId);
  if (!existsSync(dir)) throw new ReleaseError(`${dir} holds no releases of program ${programId}`);
  return readdirSync(dir)
    .filter((n) => n.endsWith('.release.json'))
    .sort()
    .map((n) => {
      const file = join(dir, n);
      const release = parseReleaseFile(readFileSync(file, 'utf8'), file);
      return { file, release, manifest: parseManifest(release.manifest) };
    });
}

/**
 * The manifest of a rollback of `programId` to `version`, built from the data dir's release
 * files: version `version`'s own release with kind "rollback", the next sequence number, the
 * newest release's ε, and `now`. ReleaseError if that version was never released.
 */
export function rollbackManifest(dataDir: string, programId: string, version: number, now = Date.now()): Uint8Array {
  const all = releasesOnDisk(dataDir, programId);
  const target = all.filter((r) => r.manifest.version === version).pop();
  if (!target) throw new ReleaseError(`program ${programId} has no release of adapter version ${version} in ${join(dataDir, RELEASES_DIR, programId)}`);
  const newest = all[all.length - 1].manifest;
  return encodeManifest({ ...target.manifest, kind: 'rollback', sequence: newest.sequence + 1, epsilon: newest.epsilon, timestampMs: now });
}

/** Put a release file into a coordinator data dir's inbox (the coordinator takes it within a second). Returns its path. */
export function submitRelease(dataDir: string, release: SignedRelease): string {
  const m = parseManifest(release.manifest);
  const dir = join(dataDir, RELEASES_DIR, INBOX_DIR);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${m.program}-${String(m.sequence).padStart(6, '0')}-${m.kind}.json`);
  writeAtomic(path, releaseFileText(release));
  return path;
}
