import { isIP } from 'node:net';

/**
 * A minimal MaxMind DB writer for tests (format 2.0, https://maxmind.github.io/MaxMind-DB/):
 * a binary search tree over 128-bit addresses (ip_version 6) with 24- or 28-bit records, the
 * 16 zero bytes that separate it from the data section, the data section (maps, UTF-8 strings,
 * unsigned integers, doubles, booleans, arrays; no pointers), then the marker
 * "\xAB\xCD\xEFMaxMind.com" and the metadata map. IPv4 networks live under 96 zero bits
 * (::a.b.c.d), where readers look IPv4 addresses up in an IPv6 tree.
 *
 * Networks are inserted broadest first; a narrower one inside a broader one splits it, so both
 * answer for their own addresses.
 */
export type MmdbValue = string | number | bigint | boolean | MmdbUint | readonly MmdbValue[] | { readonly [key: string]: MmdbValue };

/** An unsigned integer of an explicit width (plain numbers are written as uint32, bigints as uint64). */
export class MmdbUint {
  constructor(
    readonly bits: 16 | 32 | 64 | 128,
    readonly value: bigint,
  ) {}
}

export const uint16 = (value: number) => new MmdbUint(16, BigInt(value));
export const uint64 = (value: number | bigint) => new MmdbUint(64, BigInt(value));

export interface MmdbNetwork {
  /** CIDR: `198.51.100.0/24` or `2001:db8::/32`. */
  network: string;
  record: MmdbValue;
}

export interface MmdbOptions {
  recordSize?: 24 | 28;
  databaseType?: string;
  languages?: string[];
  description?: Record<string, string>;
  /** Seconds since the epoch. */
  buildEpoch?: number;
}

export const METADATA_MARKER = Buffer.from('abcdef4d61784d696e642e636f6d', 'hex');

/** A record as GeoIP2 / GeoLite2 City databases hold it (English names only). */
export function cityRecord(city: string | null, country: { iso: string; name: string }): MmdbValue {
  return {
    ...(city === null ? {} : { city: { geoname_id: 1000 + city.length, names: { en: city } } }),
    country: { geoname_id: 2000 + country.name.length, iso_code: country.iso, names: { en: country.name } },
    location: { latitude: 48.5, longitude: 9.25, time_zone: 'Europe/Berlin' },
  };
}

type Child = { kind: 'empty' } | { kind: 'node'; index: number } | { kind: 'data'; offset: number };

interface Node {
  left: Child;
  right: Child;
}

export function writeMmdb(networks: readonly MmdbNetwork[], options: MmdbOptions = {}): Buffer {
  const recordSize = options.recordSize ?? 28;
  const data = new DataWriter();
  const nodes: Node[] = [{ left: { kind: 'empty' }, right: { kind: 'empty' } }];
  const parsed = networks.map((n) => ({ ...parseNetwork(n.network), record: n.record })).sort((a, b) => a.prefix - b.prefix);
  for (const { bits, prefix, record } of parsed) {
    const leaf: Child = { kind: 'data', offset: data.add(record) };
    let node = 0;
    for (let depth = 0; depth < prefix; depth++) {
      const side = bitAt(bits, depth) === 1 ? 'right' : 'left';
      const current = nodes[node];
      if (current === undefined) throw new Error('mmdb writer: broken tree');
      if (depth === prefix - 1) {
        current[side] = leaf;
        break;
      }
      const child = current[side];
      if (child.kind === 'node') {
        node = child.index;
        continue;
      }
      // An empty branch, or a broader network being split: a new node, both halves as before.
      nodes.push({ left: child, right: child });
      current[side] = { kind: 'node', index: nodes.length - 1 };
      node = nodes.length - 1;
    }
  }

  const nodeCount = nodes.length;
  const value = (child: Child): number => (child.kind === 'empty' ? nodeCount : child.kind === 'node' ? child.index : nodeCount + 16 + child.offset);
  const nodeBytes = recordSize / 4;
  const tree = Buffer.alloc(nodeCount * nodeBytes);
  const limit = 2 ** recordSize;
  nodes.forEach((n, i) => {
    const left = value(n.left);
    const right = value(n.right);
    if (left >= limit || right >= limit) throw new Error(`mmdb writer: a record does not fit in ${recordSize} bits`);
    const at = i * nodeBytes;
    if (recordSize === 24) {
      tree.writeUIntBE(left, at, 3);
      tree.writeUIntBE(right, at + 3, 3);
    } else {
      tree.writeUIntBE(left & 0xffffff, at, 3);
      tree[at + 3] = ((left >>> 24) << 4) | (right >>> 24);
      tree.writeUIntBE(right & 0xffffff, at + 4, 3);
    }
  });

  const metadata = new DataWriter();
  metadata.add({
    node_count: new MmdbUint(32, BigInt(nodeCount)),
    record_size: uint16(recordSize),
    ip_version: uint16(6),
    database_type: options.databaseType ?? 'GeoLite2-City',
    languages: options.languages ?? ['en'],
    binary_format_major_version: uint16(2),
    binary_format_minor_version: uint16(0),
    build_epoch: uint64(options.buildEpoch ?? Math.floor(Date.UTC(2026, 0, 1) / 1000)),
    description: options.description ?? { en: 'Countersign test database' },
  });
  return Buffer.concat([tree, Buffer.alloc(16), data.bytes(), METADATA_MARKER, metadata.bytes()]);
}

/** The network's address as 16 bytes (IPv4 under 96 zero bits) and its prefix length in the IPv6 tree. */
function parseNetwork(cidr: string): { bits: Buffer; prefix: number } {
  const [address = '', length = ''] = cidr.split('/');
  const version = isIP(address);
  const prefix = Number(length);
  const max = version === 4 ? 32 : 128;
  if (version === 0 || !/^\d{1,3}$/.test(length) || prefix < 1 || prefix > max) throw new Error(`mmdb writer: not a network: ${cidr}`);
  const bits = Buffer.alloc(16);
  if (version === 4) {
    address.split('.').forEach((octet, i) => (bits[12 + i] = Number(octet)));
    return { bits, prefix: prefix + 96 };
  }
  const [head = '', tail] = address.split('::');
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const first = groups(head);
  const last = tail === undefined ? [] : groups(tail);
  const all = [...first, ...new Array<number>(8 - first.length - last.length).fill(0), ...last];
  all.forEach((group, i) => bits.writeUInt16BE(group, i * 2));
  return { bits, prefix };
}

function bitAt(bytes: Buffer, index: number): number {
  return ((bytes[index >> 3] ?? 0) >> (7 - (index & 7))) & 1;
}

/** The data section: each distinct record once, encoded as the format's typed fields. */
class DataWriter {
  private readonly chunks: Buffer[] = [];
  private length = 0;
  private readonly seen = new Map<string, number>();

  add(value: MmdbValue): number {
    const key = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof MmdbUint ? `u${v.bits}:${v.value}` : v));
    const known = this.seen.get(key);
    if (known !== undefined) return known;
    const offset = this.length;
    const bytes = encode(value);
    this.chunks.push(bytes);
    this.length += bytes.length;
    this.seen.set(key, offset);
    return offset;
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const TYPE = { utf8: 2, double: 3, uint16: 5, uint32: 6, map: 7, uint64: 9, uint128: 10, array: 11, boolean: 14 } as const;

/** A control byte (plus extended type byte) and the size bytes, for a field of `type` with `size`. */
function control(type: number, size: number): Buffer {
  let sizeBits: number;
  let extra: Buffer;
  if (size < 29) {
    sizeBits = size;
    extra = Buffer.alloc(0);
  } else if (size < 285) {
    sizeBits = 29;
    extra = Buffer.from([size - 29]);
  } else if (size < 65_821) {
    sizeBits = 30;
    extra = Buffer.alloc(2);
    extra.writeUInt16BE(size - 285);
  } else {
    sizeBits = 31;
    extra = Buffer.alloc(3);
    extra.writeUIntBE(size - 65_821, 0, 3);
  }
  // Types above 7 are "extended": type 0 in the control byte, then a byte holding type − 7.
  return type <= 7 ? Buffer.concat([Buffer.from([(type << 5) | sizeBits]), extra]) : Buffer.concat([Buffer.from([sizeBits, type - 7]), extra]);
}

function unsigned(bits: 16 | 32 | 64 | 128, value: bigint): Buffer {
  if (value < 0n || value >= 1n << BigInt(bits)) throw new Error(`mmdb writer: ${value} is not a uint${bits}`);
  const bytes: number[] = [];
  for (let v = value; v > 0n; v >>= 8n) bytes.unshift(Number(v & 0xffn));
  const type = bits === 16 ? TYPE.uint16 : bits === 32 ? TYPE.uint32 : bits === 64 ? TYPE.uint64 : TYPE.uint128;
  return Buffer.concat([control(type, bytes.length), Buffer.from(bytes)]);
}

function encode(value: MmdbValue): Buffer {
  if (typeof value === 'string') {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([control(TYPE.utf8, bytes.length), bytes]);
  }
  if (typeof value === 'boolean') return control(TYPE.boolean, value ? 1 : 0);
  if (typeof value === 'bigint') return unsigned(64, value);
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value < 2 ** 32) return unsigned(32, BigInt(value));
    const bytes = Buffer.alloc(8);
    bytes.writeDoubleBE(value);
    return Buffer.concat([control(TYPE.double, 8), bytes]);
  }
  if (value instanceof MmdbUint) return unsigned(value.bits, value.value);
  if (Array.isArray(value)) return Buffer.concat([control(TYPE.array, value.length), ...value.map((v: MmdbValue) => encode(v))]);
  const entries = Object.entries(value as Record<string, MmdbValue>);
  return Buffer.concat([control(TYPE.map, entries.length), ...entries.flatMap(([k, v]) => [encode(k), encode(v)])]);
}
