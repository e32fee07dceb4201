/**
 * `npm run bench`: throughput and latency of a TOTP/OATH verification through the Auth API,
 * measured side by side with `/healthz` on the same server in the same run (the machine is
 * shared and noisy: only ratios taken together mean anything).
 *
 * The server runs as its own process (`countersign serve`) on a fresh embedded store; the load
 * comes from autocannon in this process. Verify requests use valid codes, each exactly once:
 * N users, each with an OATH TOTP token imported from an Azure CSV, each asked for its current
 * code once. With COUNTERSIGN_DATABASE_URL set, the same is measured on PostgreSQL too (in a
 * fresh database made for the run and dropped after it).
 *
 * Beside them, the floor: the same POST /v1/verify with a key that cannot be valid, parsed and
 * validated like a real one and refused before the store is touched. It is what the HTTP and
 * JSON work of a verify costs alone; no verify can be faster, so floor/healthz bounds the
 * verify/healthz ratio, and the gap between floor and verify is the verification itself.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Secret } from 'otpauth';
import pg from 'pg';
import { generateOtp, timeStep } from '../src/core/otp/generate-otp.js';
import { measurePush } from './push.js';
import { call, startServer } from './server.js';

const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 64);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);
const USERS = Number(process.env['BENCH_USERS'] ?? 40_000);

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  approved?: number;
  denied?: number;
}

function figures(result: autocannon.Result, refusalExpected = false): Figures {
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: (refusalExpected ? result.requests.total - result.non2xx : result.non2xx) + result.errors };
}

async function healthz(base: string): Promise<Figures> {
  return figures(await autocannon({ url: `${base}/healthz`, connections: CONNECTIONS, duration: SECONDS }));
}

/** The floor: the same POST, parsed and validated, refused before any store access (a key that cannot be valid). */
async function refused(base: string): Promise<Figures> {
  const body = JSON.stringify({ username: 'user0@bench.example', code: '123456' });
  return figures(await autocannon({ url: `${base}/v1/verify`, connections: CONNECTIONS, duration: SECONDS, method: 'POST', headers: { authorization: 'Bearer not-a-key', 'content-type': 'application/json' }, body }), true);
}

async function verify(base: string, appKey: string, users: { username: string; secret: Uint8Array }[], next: { i: number }): Promise<Figures> {
  let approved = 0;
  let denied = 0;
  const result = await autocannon({
    url: `${base}/v1/verify`,
    connections: CONNECTIONS,
    duration: SECONDS,
    method: 'POST',
    headers: { authorization: `Bearer ${appKey}`, 'content-type': 'application/json' },
    requests: [
      {
        setupRequest: (request) => {
          const user = users[next.i++ % users.length];
          if (user === undefined) return request;
          // The current code, computed when the request is sent: each user is asked once.
          const code = generateOtp(user.secret, timeStep(Date.now(), 30), { algorithm: 'SHA1', digits: 6 });
          return { ...request, body: JSON.stringify({ username: user.username, code }) };
        },
        onResponse: (_status, body) => {
          if (body.includes('"approved"')) approved++;
          else denied++;
        },
      },
    ],
  });
  if (next.i > users.length) console.warn(`  (ran out of users: ${next.i - users.length} requests reused one — raise BENCH_USERS)`);
  return { ...figures(result), approved, denied };
}

async function measure(label: string, databaseUrl: string | undefined): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'countersign-bench-'));
  const { child, base, adminKey } = await startServer(dataDir, databaseUrl);
  try {
    console.log(`\n## ${label}  (${CONNECTIONS} connections, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} × ${SECONDS} s each, alternating)`);
    const app = await call(base, adminKey, 'POST', '/v1/admin/applications?tenant=default', JSON.stringify({ name: 'bench' }));
    const users = Array.from({ length: USERS }, (_, i) => ({ username: `user${i}@bench.example`, secret: randomBytes(20) }));
    let started = Date.now();
    const userCsv = ['username,display name,email,phone,state', ...users.map((u, i) => `${u.username},Bench User ${i},${u.username},,enforced`)].join('\n');
    const imported = await call(base, adminKey, 'POST', '/v1/admin/users/import?tenant=default', userCsv, 'text/csv');
    console.log(`setup: imported ${imported.created} users from CSV in ${((Date.now() - started) / 1000).toFixed(2)} s`);
    started = Date.now();
    const tokenCsv = [
      'upn,serial number,secret key,time interval,manufacturer,model',
      ...users.map((u, i) => `${u.username},SN${i},${new Secret({ buffer: u.secret.buffer.slice(u.secret.byteOffset, u.secret.byteOffset + 20) }).base32},30,Bench,T1`),
    ].join('\n');
    const tokens = await call(base, adminKey, 'POST', '/v1/admin/tokens/import?tenant=default', tokenCsv, 'text/csv');
    console.log(`setup: imported ${tokens.imported.length} OATH tokens from CSV in ${((Date.now() - started) / 1000).toFixed(2)} s`);

    await autocannon({ url: `${base}/healthz`, connections: CONNECTIONS, duration: 1 }); // warm-up
    const next = { i: 0 };
    const h: Figures[] = [];
    const v: Figures[] = [];
    const f: Figures[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      h.push(await healthz(base));
      f.push(await refused(base));
      v.push(await verify(base, app.api_key, users, next));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const hr = mean(h.map((f) => f.rps));
    const vr = mean(v.map((f) => f.rps));
    const row = (name: string, fs: Figures[]) =>
      `${name.padEnd(12)} ${mean(fs.map((f) => f.rps)).toFixed(0).padStart(8)} req/s   p50 ${mean(fs.map((f) => f.p50)).toFixed(1).padStart(5)} ms   p99 ${mean(fs.map((f) => f.p99)).toFixed(1).padStart(5)} ms   errors ${fs.reduce((a, f) => a + f.non2xx, 0)}`;
    console.log(row('/healthz', h));
    console.log(row('verify 401', f) + '   (the floor: same POST parsed and validated, refused before the store)');
    console.log(row('/v1/verify', v));
    console.log(`verify answers: ${v.reduce((a, f) => a + (f.approved ?? 0), 0)} approved, ${v.reduce((a, f) => a + (f.denied ?? 0), 0)} denied (every code valid and used once: all should be approved)`);
    console.log(`ratio verify/healthz throughput: ${(vr / hr).toFixed(2)}  (goal ≥ 0.5; p99 goal < 20 ms)`);
    const fr = mean(f.map((x) => x.rps));
    console.log(`ratio floor/healthz: ${(fr / hr).toFixed(2)}  (a verify can do no better: its HTTP and JSON work alone)`);
    console.log(`time per verify beyond the floor: ≈ ${(1e6 / vr - 1e6 / fr).toFixed(0)} µs of the server's one event loop (store, crypto, audit)`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function withPostgresDatabase(url: string, run: (url: string) => Promise<void>): Promise<void> {
  const name = `countersign_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`create database ${name}`);
  const target = new URL(url);
  target.pathname = `/${name}`;
  try {
    await run(target.toString());
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
  }
}

console.log(`Countersign benchmark — node ${process.version}, ${new Date().toISOString()}`);
// BENCH_ONLY=verify, push or postgres measures one part alone (e.g. under BENCH_SERVER_NODE_ARGS=--cpu-prof).
const only = process.env['BENCH_ONLY'];
if (only !== 'push' && only !== 'postgres') await measure('embedded store (SQLite)', undefined);
if (only !== 'verify' && only !== 'postgres') await measurePush();
const pgUrl = process.env['COUNTERSIGN_DATABASE_URL'];
if (pgUrl !== undefined && pgUrl !== '') await withPostgresDatabase(pgUrl, (url) => measure('PostgreSQL', url));
else console.log('\n(PostgreSQL not measured: set COUNTERSIGN_DATABASE_URL=postgres://… to measure it too)');
