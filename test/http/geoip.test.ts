import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activateDevice, type TestDevice } from '../support/device.js';
import { createTestApp, createTestContext, makeStoreLocation, type TestApp } from '../support/harness.js';
import { cityRecord, writeMmdb } from '../support/mmdb.js';

/**
 * Push requests carry the location of the sign-in's IP address when a GeoIP database is
 * configured (`geoip.database`): what the authenticator fetches from /v1/authenticator/pending.
 * On SQLite, and on PostgreSQL when COUNTERSIGN_TEST_DATABASE_URL is set.
 */
const dir = mkdtempSync(join(tmpdir(), 'countersign-geoip-http-'));
const database = join(dir, 'GeoLite2-City.mmdb');
writeFileSync(
  database,
  writeMmdb([
    { network: '198.51.100.0/24', record: cityRecord('Berlin', { iso: 'DE', name: 'Germany' }) },
    { network: '203.0.113.0/24', record: { country: { geoname_id: 3017382, iso_code: 'FR', names: { en: 'France' } } } },
    { network: '2001:db8:1::/48', record: cityRecord('Sydney', { iso: 'AU', name: 'Australia' }) },
    { network: '10.0.0.0/8', record: cityRecord('Intranet', { iso: 'ZZ', name: 'Nowhere' }) },
  ]),
);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let users = 0;
async function pushUser(t: TestApp): Promise<{ username: string; device: TestDevice }> {
  const username = `geo${++users}@contoso.com`;
  expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username, mfa_state: 'enforced' })).status).toBe(201);
  return { username, device: await activateDevice(t, username) };
}

/** A push from `ip` (or none), and what the user's authenticator is shown for it. */
async function pendingFrom(t: TestApp, ip: string | undefined): Promise<Record<string, unknown>> {
  const { username, device } = await pushUser(t);
  const created = await t.api('POST', '/v1/challenges', { username, method: 'push', context: { app: 'VPN', ...(ip === undefined ? {} : { ip }) } });
  expect(created.status).toBe(201);
  const pending = await device.pending();
  expect(pending.status).toBe(200);
  expect(pending.body.requests).toHaveLength(1);
  expect(pending.body.requests[0].id).toBe(created.body.id);
  return pending.body.requests[0];
}

describe('push locations from a GeoIP database', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ config: { geoip: { database } } });
  });
  afterAll(async () => {
    await t.close();
  });

  it('an IPv4 address in a City network: "City, Country", next to the application and the IP', async () => {
    expect(await pendingFrom(t, '198.51.100.23')).toMatchObject({ application: 'VPN', ip: '198.51.100.23', location: 'Berlin, Germany' });
  });

  it('an IPv6 address: its city; an IPv4-mapped IPv6 address is looked up as IPv4', async () => {
    expect((await pendingFrom(t, '2001:db8:1::7')).location).toBe('Sydney, Australia');
    expect((await pendingFrom(t, '::ffff:198.51.100.9')).location).toBe('Berlin, Germany');
  });

  it('a record with a country only: the country', async () => {
    expect((await pendingFrom(t, '203.0.113.40')).location).toBe('France');
  });

  it('no location for an address the database does not know, a private or loopback one, or no address', async () => {
    for (const ip of ['192.0.2.1', '2001:db8:2::1', '10.1.2.3', '127.0.0.1', '::1', undefined]) {
      const request = await pendingFrom(t, ip);
      expect(request).toHaveProperty('location', null);
      expect(request['ip']).toBe(ip ?? null);
    }
  });

  it('the start is logged with the database type, never with an address', () => {
    const opened = t.logs.find((line) => line.includes('GeoIP database'));
    expect(opened).toContain('GeoLite2-City');
    expect(t.logs.join('\n')).not.toContain('198.51.100.23');
  });
});

describe('push without a GeoIP database', () => {
  it('location is null', async () => {
    const t = await createTestApp();
    try {
      expect(t.config.geoip.database).toBeUndefined();
      expect(await pendingFrom(t, '198.51.100.23')).toMatchObject({ ip: '198.51.100.23', location: null });
    } finally {
      await t.close();
    }
  });
});

describe('a GeoIP database that cannot be used', () => {
  it('stops the start, naming geoip.database and the path: a missing file, a file that is not a MaxMind DB', async () => {
    const notMmdb = join(dir, 'GeoLite2-City.csv');
    writeFileSync(notMmdb, 'network,geoname_id\n198.51.100.0/24,2950159\n');
    const location = await makeStoreLocation();
    try {
      await expect(createTestContext({ location, config: { geoip: { database: join(dir, 'nope.mmdb') } } })).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: `geoip.database (COUNTERSIGN_GEOIP_DATABASE): ${join(dir, 'nope.mmdb')} does not exist`,
      });
      await expect(createTestContext({ location, config: { geoip: { database: notMmdb } } })).rejects.toThrow(`geoip.database (COUNTERSIGN_GEOIP_DATABASE): ${notMmdb} is not a MaxMind DB (.mmdb) file`);
    } finally {
      await location.drop();
    }
  });
});
