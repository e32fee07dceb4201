import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { load, save } from '../../src/cli/authenticator-store.js';
import { makeStoreLocation, type TestStoreLocation } from '../support/harness.js';
import { cityRecord, writeMmdb } from '../support/mmdb.js';

/**
 * `countersign authenticator …` end to end, as a user runs it: a real `countersign serve` on a
 * fresh store, the administrator's CLI (`user add`, `app create`, `push activate`) on the same
 * data directory, an application starting push challenges over HTTP, and the CLI authenticator
 * — activating with the link, listing, approving with the number, reporting fraud — talking to
 * the server only over HTTP with its own key file. Everything runs on the real clock.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SLOW = 120_000;
const USERNAME = 'alice@example.com';
const IP = '203.0.113.9';
/** Where the server's GeoIP database (written in beforeAll) places IP. */
const LOCATION = 'Lyon, France';

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Listed {
  id: string;
  account: string;
  application: string | null;
  ip: string | null;
  location: string | null;
  event: { title: string; detail: string | null } | null;
  expires_at: string;
  number_required: boolean;
}

let location: TestStoreLocation;
let work: string;
let keyFile: string;
let geoDatabase: string | undefined;
let server: ChildProcess | undefined;
let base = '';
let apiKey = '';
/** Every output of the authenticator commands: none may show a private key. */
const outputs: string[] = [];

function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('COUNTERSIGN_')) delete env[name];
  env['COUNTERSIGN_LOG_LEVEL'] = 'warn';
  if (location.databaseUrl !== undefined) env['COUNTERSIGN_DATABASE_URL'] = location.databaseUrl;
  if (geoDatabase !== undefined) env['COUNTERSIGN_GEOIP_DATABASE'] = geoDatabase;
  return env;
}

function run(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['bin/countersign.js', ...args], { cwd: ROOT, env: childEnv(), timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end();
  });
}

/** An administrator command on the server's data directory. */
function admin(...args: string[]): Promise<CliResult> {
  return run([...args, '--data-dir', location.dataDir]);
}

/** An authenticator command: no data directory, only the key file. */
async function authenticator(...args: string[]): Promise<CliResult> {
  const result = await run(['authenticator', ...args]);
  outputs.push(result.stdout, result.stderr);
  return result;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

async function serve(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['bin/countersign.js', 'serve', '--port', String(port), '--host', '127.0.0.1', '--data-dir', location.dataDir], { cwd: ROOT, env: childEnv() });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no start:\n${out}`)), 30_000);
    child.stdout.on('data', () => {
      if (out.includes('API documentation') && (out.includes('never again') || !out.includes('First start'))) {
        clearTimeout(timer);
        setTimeout(resolve, 200);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${String(code)}:\n${out}`)));
  });
  return child;
}

async function api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A push challenge for alice, as an application starts it. */
async function pushChallenge(context: Record<string, unknown>): Promise<{ id: string; number: string }> {
  const created = await api('POST', '/v1/challenges', { username: USERNAME, method: 'push', context });
  expect(created.status).toBe(201);
  expect(created.body).toMatchObject({ id: expect.any(String), type: 'push', status: 'pending' });
  expect(created.body['number']).toBeDefined();
  return { id: String(created.body['id']), number: String(created.body['number']) };
}

function oneLineError(result: CliResult): void {
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr).toMatch(/^countersign: .+\n$/);
  expect(result.stderr.split('\n')).toHaveLength(2);
}

beforeAll(async () => {
  location = await makeStoreLocation();
  work = mkdtempSync(join(tmpdir(), 'countersign-authenticator-e2e-'));
  keyFile = join(work, 'config', 'auth.json');
  geoDatabase = join(work, 'GeoLite2-City.mmdb');
  writeFileSync(geoDatabase, writeMmdb([{ network: '203.0.113.0/24', record: cityRecord('Lyon', { iso: 'FR', name: 'France' }) }]));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = await serve(port);
}, SLOW);

afterAll(async () => {
  if (server !== undefined && server.exitCode === null) {
    const exited = new Promise((resolve) => server?.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
  await location.drop();
});

describe('countersign authenticator (CLI, end to end)', () => {
  let deviceId = '';

  it(
    'activates with the link from push activate: prints the account, keeps the key in a 0600 file only',
    async () => {
      const user = await admin('user', 'add', '--tenant', 'default', USERNAME, '--state', 'enforced', '--json');
      expect(user.code).toBe(0);
      const link = await admin('push', 'activate', '--tenant', 'default', USERNAME, '--url', base, '--json');
      expect(link.code).toBe(0);
      const { activation_url: url } = JSON.parse(link.stdout) as { activation_url: string; expires_at: string };
      expect(url).toMatch(new RegExp(`^${base.replace(/\./g, '\\.')}/authenticator#activate=[A-Za-z0-9_-]{22,}$`));
      // Printed for people: a link to localhost says a phone cannot reach it; a public address does not.
      // Without public_url or --url, the link points at the running server's own port, as it recorded it at start.
      const local = await admin('push', 'activate', '--tenant', 'default', USERNAME);
      expect(local.stdout).toContain(`${base}/authenticator#activate=`);
      expect(local.stdout).toContain('which only this computer reaches: for a phone, set public_url (COUNTERSIGN_PUBLIC_URL)');
      const published = await admin('push', 'activate', '--tenant', 'default', USERNAME, '--url', 'https://mfa.example.com');
      expect(published.stdout).toContain('https://mfa.example.com/authenticator#activate=');
      expect(published.stdout).not.toContain('only this computer');

      // A URL without its code is refused before anything is sent.
      oneLineError(await authenticator('activate', `${base}/authenticator`, '--store', keyFile));

      const activated = await authenticator('activate', url, '--store', keyFile, '--name', 'test laptop', '--json');
      expect(activated.stderr).toBe('');
      expect(activated.code).toBe(0);
      const account = JSON.parse(activated.stdout) as Record<string, string>;
      expect(account).toEqual({ device_id: expect.stringMatching(/^[0-9a-f-]{36}$/), tenant: 'default', username: USERNAME, server: base });
      expect(Object.keys(account)).toEqual(['device_id', 'tenant', 'username', 'server']);
      deviceId = account['device_id'] ?? '';

      if (process.platform !== 'win32') {
        expect(statSync(keyFile).mode & 0o777).toBe(0o600);
        expect(statSync(join(work, 'config')).mode & 0o777).toBe(0o700);
      }
      const stored = load(keyFile);
      expect(stored.accounts).toEqual([
        {
          server: base,
          tenant: 'default',
          username: USERNAME,
          device_id: deviceId,
          name: 'test laptop',
          private_key: expect.stringMatching(/^-----BEGIN PRIVATE KEY-----\n/),
          public_key: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/),
          added_at: expect.any(String),
        },
      ]);

      // The link is single use: a second activation is refused by the server, in one line naming it.
      const again = await authenticator('activate', url, '--store', keyFile);
      oneLineError(again);
      expect(again.stderr).toContain(base);
      expect(load(keyFile).accounts).toHaveLength(1);

      const devices = await admin('push', 'devices', '--tenant', 'default', USERNAME, '--json');
      expect(JSON.parse(devices.stdout)).toEqual([expect.objectContaining({ id: deviceId, name: 'test laptop' })]);

      expect(await authenticator('list', '--store', keyFile)).toEqual({ code: 0, stdout: '(no pending requests)\n', stderr: '' });
      expect(await authenticator('list', '--store', keyFile, '--json')).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
    },
    SLOW,
  );

  it(
    'lists a push with its application, IP and location; approve needs --number, and a wrong one denies the request',
    async () => {
      const app = await admin('app', 'create', '--tenant', 'default', 'test', '--json');
      expect(app.code).toBe(0);
      apiKey = (JSON.parse(app.stdout) as { api_key: string }).api_key;

      const challenge = await pushChallenge({ app: 'VPN', ip: IP });

      const listed = await authenticator('list', '--store', keyFile, '--json');
      expect(listed.code).toBe(0);
      const requests = JSON.parse(listed.stdout) as Listed[];
      expect(requests).toEqual([
        { id: challenge.id, account: `default/${USERNAME}`, application: 'VPN', ip: IP, location: LOCATION, event: null, expires_at: expect.any(String), number_required: true, pin_required: false },
      ]);
      expect(Object.keys(requests[0] ?? {})).toEqual(['id', 'account', 'application', 'ip', 'location', 'event', 'expires_at', 'number_required', 'pin_required']);

      const text = await authenticator('list', '--store', keyFile);
      expect(text.code).toBe(0);
      expect(text.stdout.split('\n')[0]).toBe(`${challenge.id}  default/${USERNAME}  VPN  ${IP}  ${LOCATION}`);

      const missing = await authenticator('approve', challenge.id, '--store', keyFile);
      oneLineError(missing);
      expect(missing.stderr).toContain('--number');
      const letters = await authenticator('approve', challenge.id, '--number', 'forty', '--store', keyFile);
      oneLineError(letters);
      expect(letters.stderr).toContain('--number');
      expect((await api('GET', `/v1/challenges/${challenge.id}`)).body['status']).toBe('pending');

      // A wrong number denies the request at once: one try per request, so 90 numbers cannot be guessed.
      const wrongNumber = challenge.number === '10' ? '11' : '10';
      const wrong = await authenticator('approve', challenge.id, '--number', wrongNumber, '--store', keyFile, '--json');
      expect(wrong.code).toBe(0);
      expect(JSON.parse(wrong.stdout)).toEqual({ id: challenge.id, status: 'denied' });
      expect((await api('GET', `/v1/challenges/${challenge.id}`)).body).toMatchObject({ status: 'denied', reason: 'wrong_number' });
    },
    SLOW,
  );

  it(
    'approves a second push with the right number: the application reads approved',
    async () => {
      const challenge = await pushChallenge({ app: 'VPN', ip: IP, event: { title: 'Sign in to VPN', detail: 'from a new laptop' } });
      const text = await authenticator('list', '--store', keyFile);
      expect(text.code).toBe(0);
      const block = text.stdout.slice(text.stdout.indexOf(challenge.id)).split('\n');
      expect(block.slice(0, 3)).toEqual([`${challenge.id}  default/${USERNAME}  VPN  ${IP}  ${LOCATION}`, '    Sign in to VPN', '    from a new laptop']);

      const approved = await authenticator('approve', challenge.id, '--number', challenge.number, '--store', keyFile, '--json');
      expect(approved.stderr).toBe('');
      expect(approved.code).toBe(0);
      expect(JSON.parse(approved.stdout)).toEqual({ id: challenge.id, status: 'approved' });
      expect((await api('GET', `/v1/challenges/${challenge.id}`)).body['status']).toBe('approved');

      // Decided: it is no longer pending, so no account holds it.
      const twice = await authenticator('approve', challenge.id, '--number', challenge.number, '--store', keyFile);
      oneLineError(twice);
      expect(twice.stderr).toContain('not found');
    },
    SLOW,
  );

  it(
    'report-fraud on a third push gives status fraud',
    async () => {
      const challenge = await pushChallenge({ app: 'VPN', ip: IP });
      const reported = await authenticator('report-fraud', challenge.id, '--store', keyFile, '--json');
      expect(reported.stderr).toBe('');
      expect(reported.code).toBe(0);
      expect(JSON.parse(reported.stdout)).toEqual({ id: challenge.id, status: 'fraud' });
      expect((await api('GET', `/v1/challenges/${challenge.id}`)).body['status']).not.toBe('approved');
      expect(await authenticator('list', '--store', keyFile, '--json')).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
    },
    SLOW,
  );

  it(
    'one-line errors: an unknown request, an unreachable server, a key file others can read; code is a real command',
    async () => {
      const unknown = await authenticator('deny', '00000000-0000-0000-0000-000000000000', '--store', keyFile);
      oneLineError(unknown);
      expect(unknown.stderr).toContain('not found');

      // The same account on a server that is not there.
      const closed = `http://127.0.0.1:${await freePort()}`;
      const elsewhere = join(work, 'elsewhere.json');
      save(elsewhere, { version: 1, accounts: load(keyFile).accounts.map((a) => ({ ...a, server: closed })) });
      const unreachable = await authenticator('list', '--store', elsewhere);
      oneLineError(unreachable);
      expect(unreachable.stderr).toContain(closed);

      if (process.platform !== 'win32') {
        chmodSync(elsewhere, 0o644);
        const loose = await authenticator('list', '--store', elsewhere);
        oneLineError(loose);
        expect(loose.stderr).toContain(`chmod 600 ${elsewhere}`);
      }

      expect(await authenticator('code', '--store', keyFile)).toEqual({ code: 0, stdout: '(no offline codes: activate with an account that carries a TOTP secret: push activate --with-totp)\n', stderr: '' });
      expect(await authenticator('code', '--store', keyFile, '--json')).toEqual({ code: 0, stdout: '[]\n', stderr: '' });
    },
    SLOW,
  );

  it(
    'an account activated --with-totp shows offline codes: the same as oathtool computes from the stored secret',
    async () => {
      const link = await admin('push', 'activate', '--tenant', 'default', USERNAME, '--url', base, '--with-totp', '--json');
      expect(link.code).toBe(0);
      const withTotp = join(work, 'with-totp.json');
      const activated = await authenticator('activate', (JSON.parse(link.stdout) as { activation_url: string }).activation_url, '--store', withTotp, '--json');
      expect(activated.code).toBe(0);
      const secret = load(withTotp).accounts[0]?.totp?.secret ?? '';
      expect(secret).toMatch(/^[A-Z2-7]{32}$/);
      const oathtool = () => execFileSync('oathtool', ['--totp', '-b', secret], { encoding: 'utf8' }).trim();
      const before = oathtool();
      const codes = await authenticator('code', '--store', withTotp, '--json');
      const after = oathtool();
      expect(codes.code).toBe(0);
      const [entry] = JSON.parse(codes.stdout) as { account: string; code: string; seconds_left: number }[];
      expect(entry?.account).toBe(`default/${USERNAME}`);
      // A time step may turn while the command runs: the code is oathtool's of one of the two moments.
      expect([before, after]).toContain(entry?.code);
    },
    SLOW,
  );

  it('never printed a private key', () => {
    const key = load(keyFile).accounts[0]?.private_key ?? '';
    const body = key.split('\n').slice(1, -2).join('');
    expect(body.length).toBeGreaterThan(40);
    for (const output of outputs) {
      expect(output).not.toContain('PRIVATE KEY');
      expect(output).not.toContain(body.slice(0, 40));
    }
    expect(readFileSync(keyFile, 'utf8')).toContain(body.slice(0, 40));
  });
});
