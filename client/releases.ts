/**
 * A device's verified adapter releases, kept in `<dataDir>/releases/<program>/`: the program's
 * pinned release key, the releases it accepted (each a `.release.json` and its adapter file), the
 * current one, and an optional pin. A release is accepted only if its manifest's signature
 * verifies with the pinned key, it names this program and this device's base, the adapter bytes
 * hash to what it names, and it moves forward: a higher sequence number, and for a "version"
 * release a higher version — going back takes a signed "rollback" release. The last `keep`
 * releases stay on disk (the current and the pinned one always), so pinning and rolling back work
 * offline; the adapter handed out for use is re-verified from disk every time.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseReleaseFile, ReleaseError, releaseFileText, verifyRelease, type ReleaseManifest, type SignedRelease } from '../proto/release.js';

/** One kept release. */
export interface KeptRelease {
  readonly sequence: number;
  readonly version: number;
  readonly kind: 'version' | 'rollback';
  readonly adapterSha256: string;
  /** The adapter file (safetensors) and the release file, under the keeper's folder. */
  readonly adapterFile: string;
  readonly releaseFile: string;
}

/** The adapter a device uses: a release re-verified from disk. */
export interface ActiveAdapter {
  readonly version: number;
  readonly sequence: number;
  /** Path of the verified adapter file. */
  readonly path: string;
  /** Its bytes, as verified (use these rather than reading the file again). */
  readonly bytes: Uint8Array;
  readonly manifest: ReleaseManifest;
  readonly pinned: boolean;
}

interface StateFile {
  format: 'fedtune-device-releases-v1';
  program: string;
  /** hex; '' until pinned. */
  releaseKey: string;
  /** Highest sequence accepted, highest version accepted, and the current release's sequence. */
  sequence: number;
  maxVersion: number;
  current: number;
  pinned: number | null;
  kept: KeptRelease[];
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Default number of verified releases a device keeps. */
export const DEFAULT_KEEP_RELEASES = 3;

/** A device's verified releases of one program. */
export class ReleaseKeeper {
  readonly dir: string;
  private s: StateFile;

  /** Open (creating) the keeper of `programId` in `dataDir`, keeping the last `keep` releases (≥ 1). */
  constructor(
    dataDir: string,
    readonly programId: string,
    readonly keep = DEFAULT_KEEP_RELEASES,
  ) {
    if (typeof dataDir !== 'string' || dataDir === '') throw new TypeError('ReleaseKeeper: dataDir must be a folder path');
    if (typeof programId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(programId)) throw new TypeError('ReleaseKeeper: programId must be 1–64 of [A-Za-z0-9._-]');
    if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`ReleaseKeeper: keep must be a positive integer, got ${keep}`);
    this.dir = join(dataDir, 'releases', programId);
    mkdirSync(this.dir, { recursive: true });
    const path = join(this.dir, 'state.json');
    if (existsSync(path)) {
      try {
        this.s = JSON.parse(readFileSync(path, 'utf8')) as StateFile;
      } catch {
        throw new ReleaseError(`the device's release state ${path} is not readable JSON`);
      }
      if (this.s.format !== 'fedtune-device-releases-v1' || this.s.program !== programId) throw new ReleaseError(`the device's release state ${path} is not for program ${programId}`);
    } else {
      this.s = { format: 'fedtune-device-releases-v1', program: programId, releaseKey: '', sequence: 0, maxVersion: -1, current: 0, pinned: null, kept: [] };
    }
  }

  private save(): void {
    const path = join(this.dir, 'state.json');
    writeFileSync(`${path}.tmp`, JSON.stringify(this.s, null, 1));
    renameSync(`${path}.tmp`, path);
  }

  /** The pinned release key, if any. */
  get releaseKey(): Uint8Array | undefined {
    return this.s.releaseKey ? Uint8Array.from(Buffer.from(this.s.releaseKey, 'hex')) : undefined;
  }

  /**
   * Pin the program's release key (`from` says where it came from, for the sentence). The first
   * key is kept for good; any other key later is refused (ReleaseError).
   */
  pinKey(key: Uint8Array, from: string): void {
    if (!(key instanceof Uint8Array) || key.length !== 32) throw new ReleaseError(`${from} gives no Ed25519 release key (32 bytes); this device verifies every adapter and cannot take part without one`);
    if (this.s.releaseKey === '') {
      this.s.releaseKey = hex(key);
      this.save();
      return;
    }
    if (this.s.releaseKey !== hex(key)) throw new ReleaseError(`${from} gives release key ${hex(key).slice(0, 12)}…, but this device pinned ${this.s.releaseKey.slice(0, 12)}… for program ${this.programId} and never accepts a changed key`);
  }

  private requireKey(): Uint8Array {
    const k = this.releaseKey;
    if (!k) throw new ReleaseError(`this device has no release key pinned for program ${this.programId}`);
    return k;
  }

  /**
   * Everything about a release that needs no adapter bytes: signature, program, base, and that
   * it moves forward. Returns the manifest; ReleaseError otherwise. Cheap: call it before
   * downloading the adapter.
   */
  check(release: SignedRelease, baseSha256: string): ReleaseManifest {
    const m = verifyRelease(release, this.requireKey(), { program: this.programId, baseSha256 });
    const s = this.s;
    if (m.sequence < s.sequence) throw new ReleaseError(`release ${m.sequence} (version ${m.version}) is older than release ${s.sequence} this device already accepted: a downgrade is refused`);
    if (m.sequence === s.sequence) {
      const kept = s.kept.find((k) => k.sequence === m.sequence);
      const same = kept && existsSync(kept.releaseFile) && Buffer.compare(Buffer.from(parseReleaseFile(readFileSync(kept.releaseFile, 'utf8')).manifest), Buffer.from(release.manifest)) === 0;
      if (!same) throw new ReleaseError(`release ${m.sequence} differs from the release ${s.sequence} this device already accepted`);
      return m;
    }
    if (m.kind === 'version' && m.version <= s.maxVersion) throw new ReleaseError(`release ${m.sequence} names version ${m.version}, not newer than version ${s.maxVersion} this device already accepted; going back needs a signed rollback release`);
    return m;
  }

  /**
   * Verify a release with its adapter bytes and, if it holds, keep it and make it current.
   * Returns the manifest; ReleaseError with the reason otherwise (nothing changes).
   */
  accept(release: SignedRelease, adapter: Uint8Array, baseSha256: string): ReleaseManifest {
    const m = this.check(release, baseSha256);
    verifyRelease(release, this.requireKey(), { adapter });
    if (m.sequence === this.s.sequence && this.s.kept.some((k) => k.sequence === m.sequence)) return m;
    const adapterFile = join(this.dir, `v${m.version}-${m.adapterSha256.slice(0, 16)}.safetensors`);
    const releaseFile = join(this.dir, `${String(m.sequence).padStart(6, '0')}-v${m.version}.release.json`);
    if (!existsSync(adapterFile)) {
      writeFileSync(`${adapterFile}.tmp`, adapter);
      renameSync(`${adapterFile}.tmp`, adapterFile);
    }
    writeFileSync(`${releaseFile}.tmp`, releaseFileText(release));
    renameSync(`${releaseFile}.tmp`, releaseFile);
    const s = this.s;
    s.kept.push({ sequence: m.sequence, version: m.version, kind: m.kind, adapterSha256: m.adapterSha256, adapterFile, releaseFile });
    s.sequence = m.sequence;
    s.current = m.sequence;
    if (m.kind === 'version') s.maxVersion = Math.max(s.maxVersion, m.version);
    this.evict();
    this.save();
    return m;
  }

  /** Drop the oldest releases beyond `keep`, never the current or the pinned one (a file another kept release shares stays). */
  private evict(): void {
    const s = this.s;
    const pinnedSeq = s.pinned === null ? undefined : this.entryOf(s.pinned)?.sequence;
    while (s.kept.length > this.keep) {
      const i = s.kept.findIndex((k) => k.sequence !== s.current && k.sequence !== pinnedSeq);
      if (i < 0) break;
      const [gone] = s.kept.splice(i, 1);
      rmSync(gone.releaseFile, { force: true });
      if (!s.kept.some((k) => k.adapterFile === gone.adapterFile)) rmSync(gone.adapterFile, { force: true });
    }
  }

  /** The newest kept release of `version`. */
  private entryOf(version: number): KeptRelease | undefined {
    return this.s.kept.filter((k) => k.version === version).pop();
  }

  /** The kept releases, oldest first. */
  list(): readonly KeptRelease[] {
    return [...this.s.kept];
  }

  /** The pinned version, if any. */
  get pinned(): number | undefined {
    return this.s.pinned ?? undefined;
  }

  /** The current release's version (what the program last published to this device), if any. */
  get currentVersion(): number | undefined {
    return this.s.kept.find((k) => k.sequence === this.s.current)?.version;
  }

  /** Use `version` (a kept, verified one) whatever newer releases arrive; offline. RangeError if it is not kept. */
  pin(version: number): void {
    if (!Number.isSafeInteger(version) || version < 0) throw new RangeError(`ReleaseKeeper.pin: version must be an integer ≥ 0, got ${version}`);
    if (!this.entryOf(version)) throw new RangeError(`ReleaseKeeper.pin: version ${version} is not among this device's verified releases (${this.s.kept.map((k) => k.version).join(', ') || 'none'})`);
    this.s.pinned = version;
    this.save();
  }

  /** Follow the program's current release again. */
  unpin(): void {
    this.s.pinned = null;
    this.evict();
    this.save();
  }

  /**
   * Offline rollback: pin the newest kept version older than the one in use. Returns it;
   * RangeError when no older verified version is kept.
   */
  rollback(): number {
    const inUse = this.s.pinned ?? this.currentVersion;
    const older = this.s.kept.map((k) => k.version).filter((v) => inUse === undefined || v < inUse);
    if (older.length === 0) throw new RangeError(`ReleaseKeeper.rollback: no verified version older than ${inUse ?? 'none'} is kept`);
    const v = Math.max(...older);
    this.pin(v);
    return v;
  }

  /**
   * The adapter to use — the pinned version, else the current release — re-verified from disk
   * (signature with the pinned key, and the file's bytes). Undefined before any release was
   * accepted; ReleaseError if the kept files no longer verify.
   */
  active(): ActiveAdapter | undefined {
    const s = this.s;
    const pinned = s.pinned !== null;
    const e = pinned ? this.entryOf(s.pinned as number) : s.kept.find((k) => k.sequence === s.current);
    if (!e) return undefined;
    if (!existsSync(e.releaseFile) || !existsSync(e.adapterFile)) throw new ReleaseError(`the kept release of version ${e.version} is missing from ${this.dir}`);
    const release = parseReleaseFile(readFileSync(e.releaseFile, 'utf8'), e.releaseFile);
    const bytes = readFileSync(e.adapterFile);
    const manifest = verifyRelease(release, this.requireKey(), { program: this.programId, adapter: bytes });
    return { version: e.version, sequence: e.sequence, path: e.adapterFile, bytes, manifest, pinned };
  }
}
