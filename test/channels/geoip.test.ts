import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import maxmind, { Reader, type CityResponse, type CountryResponse } from 'maxmind';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createServices } from '../../src/app.js';
import { locationLabel, lookupAddress, NO_LOCATIONS, openGeoLocator } from '../../src/channels/geoip.js';
import { withServices } from '../../src/cli/context.js';
import { loadConfig } from '../../src/config.js';
import { makeStoreLocation } from '../support/harness.js';
import { cityRecord, METADATA_MARKER, writeMmdb, type MmdbNetwork } from '../support/mmdb.js';

/** The GeoIP locator over MaxMind DB files written by test/support/mmdb.ts, checked first against the real `maxmind` reader. */
const dir = mkdtempSync(join(tmpdir(), 'countersign-geoip-'));
const silent = pino({ level: 'silent' });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NETWORKS: MmdbNetwork[] = [
  { network: '198.51.100.0/24', record: cityRecord('Berlin', { iso: 'DE', name: 'Germany' }) },
  // A narrower network inside a broader one: each answers for its own addresses.
  { network: '203.0.112.0/22', record: cityRecord(null, { iso: 'FR', name: 'France' }) },
  { network: '203.0.113.128/25', record: cityRecord('Lyon', { iso: 'FR', name: 'France' }) },
  { network: '2001:db8:1::/48', record: cityRecord('Sydney', { iso: 'AU', name: 'Australia' }) },
  // A record the database holds but Countersign would not use: private space.
  { network: '10.0.0.0/8', record: cityRecord('Intranet', { iso: 'ZZ', name: 'Nowhere' }) },
];

function file(name: string, bytes: Buffer | string): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

describe('the test MaxMind DB writer, read by the maxmind library', () => {
  for (const recordSize of [24, 28] as const) {
    it(`${recordSize}-bit records: metadata, IPv4 under ::/96, IPv6, nested networks and prefix lengths`, async () => {
      const bytes = writeMmdb(NETWORKS, { recordSize, databaseType: 'GeoLite2-City', buildEpoch: 1_767_225_600 });
      expect(bytes.includes(METADATA_MARKER)).toBe(true);
      const reader = await maxmind.open<CityResponse>(file(`city-${recordSize}.mmdb`, bytes));
      expect(reader.metadata).toMatchObject({
        binaryFormatMajorVersion: 2,
        binaryFormatMinorVersion: 0,
        ipVersion: 6,
        recordSize,
        databaseType: 'GeoLite2-City',
        languages: ['en'],
        description: { en: 'Countersign test database' },
      });
      expect(reader.metadata.buildEpoch.toISOString()).toBe('2026-01-01T00:00:00.000Z');
      expect(reader.get('198.51.100.77')).toEqual({
        city: { geoname_id: 1006, names: { en: 'Berlin' } },
        country: { geoname_id: 2007, iso_code: 'DE', names: { en: 'Germany' } },
        location: { latitude: 48.5, longitude: 9.25, time_zone: 'Europe/Berlin' },
      });
      expect(reader.getWithPrefixLength('198.51.100.1')[1]).toBe(24);
      expect(reader.get('203.0.113.200')?.city?.names.en).toBe('Lyon');
      expect(reader.getWithPrefixLength('203.0.113.200')[1]).toBe(25);
      const [broader, prefix] = reader.getWithPrefixLength('203.0.113.5');
      expect(broader?.city).toBeUndefined();
      expect(broader?.country?.names.en).toBe('France');
      expect(prefix).toBe(25);
      expect(reader.get('203.0.112.9')?.country?.iso_code).toBe('FR');
      expect(reader.get('2001:db8:1:2::3')?.city?.names.en).toBe('Sydney');
      expect(reader.getWithPrefixLength('2001:db8:1::1')[1]).toBe(48);
      expect(reader.get('192.0.2.1')).toBeNull();
      expect(reader.get('2001:db8:2::1')).toBeNull();
      // The same bytes through the Reader directly (what maxmind.open builds).
      expect(new Reader<CountryResponse>(bytes).get('198.51.100.1')?.country?.iso_code).toBe('DE');
    });
  }

  it('28-bit records above 2^24 (a data section past 16 MiB) keep their high bits; 24-bit records refuse them', () => {
    const networks: MmdbNetwork[] = [
      // Written first (the broadest network), so the next record's offset lies past 2^24.
      { network: '100.0.0.0/8', record: { filler: 'x'.repeat(2 ** 24) } },
      { network: '198.51.100.0/24', record: cityRecord('Berlin', { iso: 'DE', name: 'Germany' }) },
      { network: '2001:db8:1::/48', record: cityRecord('Sydney', { iso: 'AU', name: 'Australia' }) },
    ];
    const reader = new Reader<CityResponse>(writeMmdb(networks, { recordSize: 28 }));
    expect(reader.get('198.51.100.1')?.city?.names.en).toBe('Berlin');
    expect(reader.get('2001:db8:1::1')?.city?.names.en).toBe('Sydney');
    expect(() => writeMmdb(networks, { recordSize: 24 })).toThrow(/does not fit in 24 bits/);
  });

  it('long strings, arrays, booleans, doubles and big integers decode as written', () => {
    const record = { s: 'x'.repeat(300), t: 'y'.repeat(70_000), a: [1, 'two', true, false], d: -1.5, n: 2 ** 31, u: 12n, m: { nested: { deep: 'ok' } } };
    const reader = new Reader<any>(writeMmdb([{ network: '192.0.2.0/24', record }], { recordSize: 24 }));
    expect(reader.get('192.0.2.10')).toEqual(record);
  });
});

describe('GeoIP locations', () => {
  it('labels: "City, Country", the country alone, English names only, control characters removed', () => {
    expect(locationLabel({ city: { names: { en: 'Berlin', de: 'Berlin' } }, country: { names: { en: 'Germany', de: 'Deutschland' } } })).toBe('Berlin, Germany');
    expect(locationLabel({ country: { iso_code: 'DE', names: { en: 'Germany' } } })).toBe('Germany');
    expect(locationLabel({ city: { names: { de: 'München' } }, country: { names: { en: 'Germany' } } })).toBe('Germany');
    expect(locationLabel({ city: { names: { en: 'Evil\nCity\u0007' } }, country: { names: { en: 'Land' } } })).toBe('Evil City, Land');
    expect(locationLabel({ autonomous_system_number: 64496 })).toBeNull();
    expect(locationLabel(null)).toBeNull();
  });

  it('addresses without a place: invalid, private, loopback, link-local, unspecified; IPv4-mapped IPv6 is IPv4', () => {
    for (const ip of [null, undefined, '', 'not-an-ip', '999.1.1.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '127.0.0.1', '169.254.1.1', '100.64.0.1', '0.0.0.0', '::', '::1', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', 'fe80::1%eth0']) {
      expect(lookupAddress(ip)).toBeUndefined();
    }
    expect(lookupAddress('::ffff:198.51.100.7')).toEqual({ address: '198.51.100.7', version: 4 });
    expect(lookupAddress('2001:db8::1')).toEqual({ address: '2001:db8::1', version: 6 });
  });

  it('IPv4 inside IPv6 in any spelling is the IPv4 address it carries: hex IPv4-mapped, 6to4; private ones are caught', () => {
    for (const ip of ['::ffff:a00:1', '::FFFF:A00:1', '::ffff:0a00:0001', '0:0:0:0:0:ffff:c0a8:101', '::ffff:7f00:1', '::ffff:a9fe:101', '::ffff:6440:1', '2002:a00:1::1', '2002:c0a8:101::', '::a00:1', '::10.0.0.1', '2001:0:a00:1::1']) {
      expect(lookupAddress(ip), ip).toBeUndefined();
    }
    expect(lookupAddress('::ffff:c633:6407')).toEqual({ address: '198.51.100.7', version: 4 });
    expect(lookupAddress('0:0:0:0:0:FFFF:C633:6407')).toEqual({ address: '198.51.100.7', version: 4 });
    expect(lookupAddress('2002:c633:6407::1')).toEqual({ address: '198.51.100.7', version: 4 });
    // Forms ipaddr.js would take but no socket reports.
    for (const ip of ['10.1', '0x0a000001', '010.0.0.1', '1.2.3']) expect(lookupAddress(ip), ip).toBeUndefined();
  });

  it('a City database: IPv4, IPv4-mapped and IPv6 addresses get labels; unknown and private ones null', async () => {
    const geo = await openGeoLocator(file('city.mmdb', writeMmdb(NETWORKS)), silent);
    expect(geo.locate('198.51.100.9')).toBe('Berlin, Germany');
    expect(geo.locate('::ffff:198.51.100.9')).toBe('Berlin, Germany');
    expect(geo.locate('203.0.113.129')).toBe('Lyon, France');
    expect(geo.locate('203.0.113.1')).toBe('France');
    expect(geo.locate('2001:db8:1::42')).toBe('Sydney, Australia');
    expect(geo.locate('192.0.2.1')).toBeNull();
    expect(geo.locate('2001:db8:ffff::1')).toBeNull();
    // In the file, but private: no location.
    expect(geo.locate('10.1.1.1')).toBeNull();
    expect(geo.locate('::ffff:a01:101')).toBeNull();
    expect(geo.locate('::a01:101')).toBeNull();
    expect(geo.locate('::ffff:c633:6409')).toBe('Berlin, Germany');
    expect(geo.locate('::1')).toBeNull();
    expect(geo.locate('garbage')).toBeNull();
    expect(geo.locate(null)).toBeNull();
  });

  it('a Country database: the country name', async () => {
    const geo = await openGeoLocator(
      file('country.mmdb', writeMmdb([{ network: '198.51.100.0/24', record: { country: { geoname_id: 2921044, iso_code: 'DE', names: { en: 'Germany', fr: 'Allemagne' } } } }], { databaseType: 'GeoLite2-Country' })),
      silent,
    );
    expect(geo.locate('198.51.100.1')).toBe('Germany');
  });

  it('a damaged record: no location, no exception; logged once, without the address', async () => {
    const bytes = writeMmdb([{ network: '198.51.100.0/24', record: cityRecord('Berlin', { iso: 'DE', name: 'Germany' }) }]);
    // The record's control byte becomes an invalid extended type; the tree still points at it.
    const dataStart = new Reader(bytes).metadata.searchTreeSize + 16;
    bytes[dataStart] = 0;
    bytes[dataStart + 1] = 0;
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const geo = await openGeoLocator(file('damaged.mmdb', bytes), log);
    expect(geo.locate('198.51.100.1')).toBeNull();
    expect(geo.locate('198.51.100.2')).toBeNull();
    const warnings = lines.filter((l) => l.includes('GeoIP lookup failed'));
    expect(warnings).toHaveLength(1);
    expect(lines.join('')).not.toContain('198.51.100');
  });

  it('no database: no locations', async () => {
    expect(await openGeoLocator(undefined, silent)).toBe(NO_LOCATIONS);
    expect(NO_LOCATIONS.locate('198.51.100.1')).toBeNull();
  });

  it('a path that cannot be used stops the start, naming the setting and the path', async () => {
    const missing = join(dir, 'missing.mmdb');
    await expect(openGeoLocator(missing, silent)).rejects.toThrow(`geoip.database (COUNTERSIGN_GEOIP_DATABASE): ${missing} does not exist`);
    const folder = join(dir, 'folder.mmdb');
    mkdirSync(folder);
    await expect(openGeoLocator(folder, silent)).rejects.toThrow(`${folder} is a directory`);
    const text = file('text.mmdb', 'this is not a database\n'.repeat(50));
    await expect(openGeoLocator(text, silent)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: `geoip.database (COUNTERSIGN_GEOIP_DATABASE): ${text} is not a MaxMind DB (.mmdb) file` });
    const empty = file('empty.mmdb', '');
    await expect(openGeoLocator(empty, silent)).rejects.toThrow(`${empty} is not a MaxMind DB (.mmdb) file`);
    const zipped = file('zipped.mmdb', gzipSync(writeMmdb(NETWORKS)));
    await expect(openGeoLocator(zipped, silent)).rejects.toThrow(`${zipped} is compressed (gzip)`);
    // The tree cut off: the metadata is there, the records are not.
    const whole = writeMmdb(NETWORKS);
    const cut = file('cut.mmdb', Buffer.concat([whole.subarray(0, 20), whole.subarray(whole.indexOf(METADATA_MARKER))]));
    await expect(openGeoLocator(cut, silent)).rejects.toThrow(`${cut} is not a MaxMind DB (.mmdb) file`);
  });
});

describe('who opens the GeoIP database', () => {
  it('the server does; CLI commands do not (none shows a location): no reading the file, no failing on a path only the server can read', async () => {
    const missing = join(dir, 'only-on-the-server.mmdb');
    const location = await makeStoreLocation();
    try {
      const config = loadConfig({ env: {}, cwd: dir, overrides: { dataDir: location.dataDir, databaseUrl: location.databaseUrl, geoip: { database: missing } } });
      await expect(createServices(config, { logger: silent })).rejects.toThrow(`${missing} does not exist`);
      const services = await createServices(config, { logger: silent, geo: false });
      try {
        expect(services.geo).toBe(NO_LOCATIONS);
      } finally {
        await services.store.close();
      }
      // A CLI command, configured like the server (here through its --config file).
      const file = join(dir, 'cli.yaml');
      writeFileSync(file, `geoip:\n  database: ${missing}\n`);
      const seen = await withServices({ dataDir: location.dataDir, databaseUrl: location.databaseUrl, config: file }, async (cli) => {
        expect(cli.config.geoip.database).toBe(missing);
        return cli.geo;
      });
      expect(seen).toBe(NO_LOCATIONS);
    } finally {
      await location.drop();
    }
  });
});
