import { stat } from 'node:fs/promises';
import { BlockList, isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Logger } from 'pino';
import { CountersignError } from '../core/errors.js';

/**
 * Where an IP address is, for the push requests an authenticator shows ("Berlin, Germany"):
 * looked up in a MaxMind DB file (`geoip.database`: GeoLite2 / GeoIP2 City or Country, DB-IP's
 * "IP to City Lite", or any .mmdb with `city` and `country` records) read by the `maxmind`
 * library. The file is read into memory once, at start; a path that cannot be read or a file
 * that is not a MaxMind DB stops the start, naming the path. A lookup never throws: an address
 * that is invalid, private, loopback, link-local or not in the database, or a record without an
 * English name, has no location (null). Without a database every location is null.
 */
export interface GeoLocator {
  /** "City, Country", "Country" (a country database or an address known only to its country), or null. */
  locate(ip: string | null | undefined): string | null;
}

/** No database configured: no locations. */
export const NO_LOCATIONS: GeoLocator = Object.freeze({ locate: () => null });

const SETTING = 'geoip.database (COUNTERSIGN_GEOIP_DATABASE)';

/** Addresses that have no place on a map: private, loopback, link-local, shared (CGNAT), multicast, reserved. */
const NOWHERE = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  NOWHERE.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  // ::/96 holds :: and ::1, and the deprecated IPv4-compatible addresses (::10.0.0.1), which a
  // MaxMind DB answers from its IPv4 tree: they would reach private-space records.
  ['::', 96],
  // Teredo: the IPv4 address a MaxMind DB reads from it is the relay's, not the client's.
  ['2001::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  NOWHERE.addSubnet(network, prefix, 'ipv6');
}

/**
 * The address to look up, or undefined if it has no location. IPv4 inside IPv6 is looked up as
 * the IPv4 address it carries, as the MaxMind DB would (so that its private ranges are caught
 * too): IPv4-mapped in any spelling (`::ffff:192.0.2.1` as dual-stack sockets report, or
 * `::ffff:c000:201`), and 6to4 (2002::/16).
 */
export function lookupAddress(ip: string | null | undefined): { address: string; version: 4 | 6 } | undefined {
  // isIP first: ipaddr.js also takes forms no socket reports (`10.1`, `0x0a000001`, `010.0.0.1`).
  if (typeof ip !== 'string' || ip.length > 64 || ip.includes('%') || isIP(ip) === 0) return undefined;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(ip);
  } catch {
    return undefined;
  }
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    else if (v6.range() === '6to4') parsed = ipaddr.fromByteArray(v6.toByteArray().slice(2, 6));
  }
  const version = parsed.kind() === 'ipv4' ? 4 : 6;
  const address = parsed.toString();
  return NOWHERE.check(address, version === 4 ? 'ipv4' : 'ipv6') ? undefined : { address, version };
}

/** The readable label of a City or Country record: English names, city first. */
export function locationLabel(record: unknown): string | null {
  const city = englishName(field(record, 'city'));
  const country = englishName(field(record, 'country'));
  if (city !== undefined && country !== undefined) return `${city}, ${country}`;
  return country ?? city ?? null;
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[key] : undefined;
}

function englishName(place: unknown): string | undefined {
  const name = field(field(place, 'names'), 'en');
  if (typeof name !== 'string') return undefined;
  // Shown to users and possibly logged: one line, no control characters, of sane length.
  // eslint-disable-next-line no-control-regex -- the point is to remove control characters
  const clean = name.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim().slice(0, 100);
  return clean === '' ? undefined : clean;
}

/**
 * Opens the configured database, once. `path` undefined → no locations. Throws CONFIG_INVALID
 * naming the setting and the path when the file cannot be read or is not a MaxMind DB.
 */
export async function openGeoLocator(path: string | undefined, log: Logger): Promise<GeoLocator> {
  if (path === undefined) return NO_LOCATIONS;
  // Loaded only when configured: commands and servers without a database never load it.
  const { open } = await import('maxmind');
  let reader: Awaited<ReturnType<typeof open>>;
  let size: number;
  try {
    reader = await open(path);
    size = (await stat(path)).size;
  } catch (error) {
    throw new CountersignError('CONFIG_INVALID', `${SETTING}: ${path} ${whyNotOpened(error)}`, { cause: error });
  }
  const metadata = reader.metadata as Partial<typeof reader.metadata> | undefined;
  const valid =
    metadata !== undefined &&
    metadata.binaryFormatMajorVersion === 2 &&
    (metadata.ipVersion === 4 || metadata.ipVersion === 6) &&
    typeof metadata.nodeCount === 'number' &&
    Number.isInteger(metadata.nodeCount) &&
    metadata.nodeCount > 0 &&
    typeof metadata.searchTreeSize === 'number' &&
    // The search tree and the 16-byte separator lie before the metadata: a file cut short fails here.
    metadata.searchTreeSize + 16 < size &&
    typeof metadata.databaseType === 'string';
  // A file whose tree or data is damaged fails here, at start, rather than on a sign-in.
  let probed = false;
  if (valid) {
    try {
      reader.get('8.8.8.8');
      if (metadata.ipVersion === 6) reader.get('2001:4860:4860::8888');
      probed = true;
    } catch {
      probed = false;
    }
  }
  if (!valid || !probed) throw new CountersignError('CONFIG_INVALID', `${SETTING}: ${path} is not a MaxMind DB (.mmdb) file`);
  const ipv6 = metadata.ipVersion === 6;
  const built = metadata.buildEpoch instanceof Date && !Number.isNaN(metadata.buildEpoch.getTime()) ? metadata.buildEpoch.toISOString() : undefined;
  log.info({ geoip: { type: metadata.databaseType, built } }, 'push requests carry locations from the GeoIP database');

  let failureLogged = false;
  return {
    locate(ip) {
      const target = lookupAddress(ip);
      if (target === undefined || (target.version === 6 && !ipv6)) return null;
      try {
        return locationLabel(reader.get(target.address));
      } catch (error) {
        // A damaged record: no location, and the request goes on. Logged once, without the address.
        if (!failureLogged) {
          failureLogged = true;
          log.warn({ error: error instanceof Error ? error.message.slice(0, 200) : 'unknown' }, 'a GeoIP lookup failed; such requests show no location (logged once)');
        }
        return null;
      }
    },
  };
}

function whyNotOpened(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'cannot be read (permission denied)';
  if (code === 'EISDIR') return 'is a directory, not a .mmdb file';
  if (error instanceof Error && /gzip/i.test(error.message)) return 'is compressed (gzip): unpack the .mmdb file from the download and point to it';
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return `cannot be read (${code})`;
  return 'is not a MaxMind DB (.mmdb) file';
}
