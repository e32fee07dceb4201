/**
 * The push part of `npm run bench`, on a fresh embedded store (its own `countersign serve`):
 *
 * (a) The round trip: the application creates a push challenge (POST /v1/challenges) and at once
 *     long-polls it (GET /v1/challenges/{id}?wait=30); the authenticator, listening on its live
 *     stream (/v1/authenticator/stream, Server-Sent Events), sees the request arrive, signs an
 *     approval with the number and posts it; the waiting caller's answer comes back `approved`.
 *     BENCH_PUSH_CONCURRENCY users go at once, BENCH_PUSH_ROUNDS rounds in all; p50/p99 are taken
 *     over every round (nearest rank). "answer sent → caller woken" is SPEC's "a push approval
 *     wakes a long-polling caller in under 10 ms": from the moment the device's answer is sent
 *     to the moment the waiting caller has its reply.
 * (b) Capacity: BENCH_PUSH_PENDING pending pushes (BENCH_PUSH_PER_USER per user), each with a
 *     caller waiting on GET ?wait=60 (asked again while still pending), and the server process's resident memory (VmRSS from
 *     /proc) before and while it holds them; then every push is approved by its device and every
 *     caller must wake with `approved`. An answer that fails is tried again (ANSWER_ATTEMPTS in
 *     all); one that still fails, and a caller not woken within CALLER_DEADLINE_MS of the last
 *     answer, are counted as failures and their long polls abandoned, so the run never stalls.
 *
 * Everything happens in a tenant of its own ("bench-push") whose push fatigue limits are raised
 * through the admin settings API (the product defaults allow a user 3 pushes in 5 minutes).
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { deviceRequestMessage, pushAnswerMessage } from '../src/core/push-signature.js';
import { call, startServer, stopServer } from './server.js';

const ROUNDS = Number(process.env['BENCH_PUSH_ROUNDS'] ?? 500);
const CONCURRENCY = Number(process.env['BENCH_PUSH_CONCURRENCY'] ?? 8);
const PENDING = Number(process.env['BENCH_PUSH_PENDING'] ?? 5000);
const PER_USER = Number(process.env['BENCH_PUSH_PER_USER'] ?? 10);

const TENANT = 'bench-push';
/**
 * Raised for the bench tenant only (the highest values src/core/settings.ts accepts): the push
 * fatigue limits, the open challenges per user, and how long a push stays open — so pushes made
 * early in a large capacity run are still pending when the last ones are created.
 */
const SETTINGS = { push_limit_per_5_minutes: 50, push_limit_since_success: 100, challenge_max_open: 50, push_ttl_seconds: 300 };
/** Pushes one round-trip user is given at most, under push_limit_per_5_minutes. */
const ROUNDS_PER_USER = 45;
const WARM_UP_ROUNDS_PER_WORKER = 2;
/** Parallel requests while setting up, creating the pending pushes and answering them. */
const SETUP_CONCURRENCY = 32;
/** Capacity phase: tries per answer (the first and retries), and how long callers may take to wake after the last answer. */
const ANSWER_ATTEMPTS = 3;
const CALLER_DEADLINE_MS = 30_000;

interface Reply {
  status: number;
  body: any;
}

/** Plain node:http with one keep-alive agent without a socket limit: thousands of long polls at once. */
function client(base: string) {
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const send = (method: string, path: string, authorization: string | undefined, body?: unknown, signal?: AbortSignal): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = {};
      if (authorization !== undefined) headers['authorization'] = authorization;
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(payload);
      }
      const req = httpRequest(new URL(path, base), { method, agent, headers, ...(signal === undefined ? {} : { signal }) }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) });
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  return { send, close: () => agent.destroy() };
}

type Send = ReturnType<typeof client>['send'];

interface Device {
  username: string;
  id: string;
  privateKey: KeyObject;
}

function signText(key: KeyObject, message: string): string {
  return sign('sha256', Buffer.from(message, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

/** An activation link from the admin API, then the authenticator's side: a P-256 key pair, only its public key sent. */
async function activate(send: Send, adminKey: string, username: string): Promise<Device> {
  const started = await send('POST', `/v1/admin/users/${encodeURIComponent(username)}/push/activation?tenant=${TENANT}`, `Bearer ${adminKey}`, {});
  if (started.status !== 201) throw new Error(`activation of ${username}: ${started.status} ${JSON.stringify(started.body)}`);
  const code = new URL(started.body.activation_url as string).hash.replace('#activate=', '');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const activated = await send('POST', '/v1/authenticator/activate', undefined, { code, public_key: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), name: 'bench phone' });
  if (activated.status !== 201) throw new Error(`activate ${username}: ${activated.status} ${JSON.stringify(activated.body)}`);
  return { username, id: activated.body.device_id, privateKey };
}

function answer(send: Send, device: Device, challengeId: string, number: string): Promise<Reply> {
  const timestamp = Date.now();
  const signature = signText(device.privateKey, pushAnswerMessage(challengeId, 'approve', number, timestamp));
  return send('POST', `/v1/authenticator/challenges/${challengeId}/answer`, undefined, { device_id: device.id, decision: 'approve', number, timestamp, signature });
}

/** The authenticator's live stream: remembers when each request id was first seen. */
interface LiveStream {
  /** When (performance.now()) the request was first in an event. */
  notified(challengeId: string): Promise<number>;
  close(): void;
}

async function openStream(base: string, device: Device): Promise<LiveStream> {
  const timestamp = Date.now();
  const signature = signText(device.privateKey, deviceRequestMessage(device.id, 'GET', '/v1/authenticator/stream', timestamp));
  const abort = new AbortController();
  const response = await fetch(`${base}/v1/authenticator/stream`, { headers: { authorization: `Device ${device.id}.${timestamp}.${signature}` }, signal: abort.signal });
  if (response.status !== 200 || response.body === null) throw new Error(`stream of ${device.username}: ${response.status}`);
  const reader = response.body.getReader();
  const seen = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  let first: (() => void) | undefined;
  const ready = new Promise<void>((resolve) => (first = resolve));
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      const at = performance.now();
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split('\n').find((line) => line.startsWith('data: '));
        if (data === undefined) continue;
        first?.();
        for (const request of (JSON.parse(data.slice(6)) as { requests: { id: string }[] }).requests) {
          if (seen.has(request.id)) continue;
          seen.set(request.id, at);
          waiters.get(request.id)?.(at);
          waiters.delete(request.id);
        }
      }
    }
  })().catch((error: unknown) => {
    if (!abort.signal.aborted) console.warn(`  (the stream of ${device.username} failed: ${String(error)})`);
  });
  await ready;
  return {
    notified: (id) => {
      const at = seen.get(id);
      return at !== undefined ? Promise.resolve(at) : new Promise((resolve) => waiters.set(id, resolve));
    },
    close: () => abort.abort(),
  };
}

/** Runs task(0 … n-1) with at most `concurrency` at once. */
async function pool(n: number, concurrency: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/** `promise`'s value, or `fallback` after `ms` — the timer cleared either way, so none outlives its race. */
async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(resolve, ms, fallback)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Nearest-rank percentile over all samples. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? NaN;
}

function row(name: string, samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const ms = (x: number) => x.toFixed(1).padStart(6);
  return `${name.padEnd(31)} p50 ${ms(percentile(sorted, 50))} ms   p99 ${ms(percentile(sorted, 99))} ms   max ${ms(sorted.at(-1) ?? NaN)} ms`;
}

/** The server process as the kernel sees it (Linux /proc); undefined elsewhere. */
function processFigures(pid: number): { rssKb: number; fds: number; cpuTicks: number } | undefined {
  try {
    const rssKb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    const cpuTicks = Number(fields[11]) + Number(fields[12]); // utime + stime (fields 14, 15)
    return { rssKb, fds: readdirSync(`/proc/${pid}/fd`).length, cpuTicks };
  } catch {
    return undefined;
  }
}

const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function roundTrip(base: string, send: Send, appKey: string, devices: Device[][]): Promise<void> {
  const streams = new Map<string, LiveStream>();
  try {
    for (const device of devices.flat()) streams.set(device.id, await openStream(base, device));
    const create: number[] = [];
    const notified: number[] = [];
    const answered: number[] = [];
    const wake: number[] = [];
    const woken: number[] = [];
    let approved = 0;
    const failures: string[] = [];
    const perWorker = Math.ceil(ROUNDS / devices.length);
    let left = ROUNDS;
    const one = async (device: Device, record: boolean): Promise<void> => {
      const stream = streams.get(device.id);
      if (stream === undefined) throw new Error('no stream');
      const t0 = performance.now();
      const created = await send('POST', '/v1/challenges', `Bearer ${appKey}`, { username: device.username, method: 'push', context: { app: 'bench' } });
      const t1 = performance.now();
      if (created.status !== 201) {
        failures.push(`create ${created.status} ${JSON.stringify(created.body)}`);
        return;
      }
      const id: string = created.body.id;
      let wokenAt = 0;
      const waiting = send('GET', `/v1/challenges/${id}?wait=30`, `Bearer ${appKey}`).then((r) => ((wokenAt = performance.now()), r));
      const seenAt = await within(stream.notified(id), 30_000, NaN);
      if (Number.isNaN(seenAt)) {
        failures.push(`the device was not told of ${id} within 30 s`);
        await waiting;
        return;
      }
      const sentAt = performance.now();
      const accepted = await answer(send, device, id, String(created.body.number));
      const acceptedAt = performance.now();
      const caller = await waiting;
      if (accepted.status !== 200 || accepted.body.status !== 'approved') failures.push(`answer ${accepted.status} ${JSON.stringify(accepted.body)}`);
      else if (caller.status !== 200 || caller.body.status !== 'approved') failures.push(`caller ${caller.status} ${JSON.stringify(caller.body)}`);
      else if (record) {
        approved++;
        create.push(t1 - t0);
        notified.push(seenAt - t0);
        answered.push(acceptedAt - seenAt);
        wake.push(wokenAt - sentAt);
        woken.push(wokenAt - t0);
      }
    };
    // Each worker is one sign-in after another, over its own users in turn (fatigue limits per user).
    await Promise.all(devices.map(async (users) => {
      for (let i = 0; i < WARM_UP_ROUNDS_PER_WORKER; i++) await one(users[i % users.length] as Device, false);
    }));
    failures.length = 0;
    const started = performance.now();
    await Promise.all(
      devices.map(async (users) => {
        for (let i = 0; i < perWorker && left > 0; i++) {
          left--;
          await one(users[(i + WARM_UP_ROUNDS_PER_WORKER) % users.length] as Device, true);
        }
      }),
    );
    const elapsed = performance.now() - started;
    console.log(row('create (POST /v1/challenges)', create));
    console.log(row('create → device notified', notified));
    console.log(row('notified → answer accepted', answered));
    console.log(`${row('answer sent → caller woken', wake)}   (SPEC: < 10 ms)`);
    console.log(row('create → caller woken (total)', woken));
    console.log(`round trips: ${approved} approved by the caller, ${failures.length} failed in ${seconds(elapsed)} (${((approved * 1000) / elapsed).toFixed(0)} round trips/s)`);
    for (const failure of failures.slice(0, 5)) console.log(`  failed: ${failure}`);
  } finally {
    for (const stream of streams.values()) stream.close();
  }
}

async function capacity(pid: number, send: Send, appKey: string, devices: Device[]): Promise<void> {
  await sleep(1000);
  const before = processFigures(pid);
  const pushes: { device: Device; id: string; number: string; caller: Promise<Reply>; done: boolean; abandon: AbortController }[] = [];
  const refused: string[] = [];
  const createdAt: number[] = [];
  let started = performance.now();
  await pool(PENDING, SETUP_CONCURRENCY, async (i) => {
    const device = devices[i % devices.length] as Device;
    const created = await send('POST', '/v1/challenges', `Bearer ${appKey}`, { username: device.username, method: 'push', context: { app: 'bench' } });
    if (created.status !== 201) {
      refused.push(`${created.status} ${JSON.stringify(created.body)}`);
      return;
    }
    const push = { device, id: created.body.id as string, number: String(created.body.number), caller: Promise.resolve<Reply>({ status: 0, body: undefined }), done: false, abandon: new AbortController() };
    // As an application does: wait again while the answer is still pending (?wait is at most 60 s).
    // A failed request, or one abandoned (its answer failed, or the deadline passed), ends the wait.
    const wait = async (): Promise<Reply> => {
      try {
        for (;;) {
          const reply = await send('GET', `/v1/challenges/${push.id}?wait=60`, `Bearer ${appKey}`, undefined, push.abandon.signal);
          if (reply.status !== 200 || reply.body.status !== 'pending') return reply;
        }
      } catch (error) {
        return { status: 0, body: { status: push.abandon.signal.aborted ? 'abandoned' : 'failed', error: String(error) } };
      }
    };
    push.caller = wait().finally(() => (push.done = true));
    pushes.push(push);
    createdAt.push(performance.now());
  });
  const createdIn = performance.now() - started;
  // The rate over the first and the last tenth: how the callers already waiting slow the creates.
  const tenth = Math.max(1, Math.floor(createdAt.length / 10));
  const rate = (from: number, to: number) => ((to - from) / (((createdAt[to] ?? 0) - (createdAt[from] ?? 0)) / 1000)).toFixed(0);
  const rates = createdAt.length > 20 ? ` — ${rate(0, tenth)}/s over the first tenth, ${rate(createdAt.length - 1 - tenth, createdAt.length - 1)}/s over the last` : '';
  console.log(`created ${pushes.length} pending pushes in ${seconds(createdIn)} (${((pushes.length * 1000) / createdIn).toFixed(0)}/s${rates}), each with a caller on GET ?wait=60${refused.length > 0 ? `; ${refused.length} refused, e.g. ${refused[0]}` : ''}`);
  // Let every long poll reach the server, then look at the process while it holds them.
  await sleep(2000);
  const holding = processFigures(pid);
  await sleep(3000);
  const later = processFigures(pid);
  const waiting = pushes.filter((p) => !p.done).length;
  if (before !== undefined && holding !== undefined && later !== undefined) {
    const delta = holding.rssKb - before.rssKb;
    console.log(`callers still waiting: ${waiting} of ${pushes.length}; server sockets+files open ${before.fds} → ${holding.fds}`);
    console.log(`server RSS ${mb(before.rssKb)} → ${mb(holding.rssKb)} holding them: +${mb(delta)}, ${((delta * 1024) / Math.max(1, waiting)).toFixed(0)} bytes per pending push with its waiting caller`);
    console.log(`server CPU while holding (idle otherwise): ${(((later.cpuTicks - holding.cpuTicks) / 100 / 3) * 100).toFixed(0)}% of one core (each caller re-reads its challenge every second)`);
  } else {
    console.log(`callers still waiting: ${waiting} of ${pushes.length}  (server RSS not measured: no /proc on this system)`);
  }
  started = performance.now();
  let accepted = 0;
  let retried = 0;
  const errors: string[] = [];
  await pool(pushes.length, SETUP_CONCURRENCY, async (i) => {
    const push = pushes[i];
    if (push === undefined) return;
    let failure = '';
    for (let attempt = 1; attempt <= ANSWER_ATTEMPTS; attempt++) {
      if (attempt > 1) {
        retried++;
        await sleep(100 * attempt);
      }
      try {
        const reply = await answer(send, push.device, push.id, push.number);
        if (reply.status === 200 && reply.body.status === 'approved') {
          accepted++;
          return;
        }
        failure = `${reply.status} ${JSON.stringify(reply.body)}`;
        // Only an overloaded or failing server is worth another try; a refusal stays one.
        if (reply.status !== 429 && reply.status < 500) break;
      } catch (error) {
        failure = String(error);
      }
    }
    errors.push(failure);
    // Nobody will approve it now: stop its caller instead of waiting for the push to expire.
    push.abandon.abort();
  });
  const answeredIn = performance.now() - started;
  const all = Promise.all(pushes.map((p) => p.caller));
  if ((await within(all, CALLER_DEADLINE_MS, undefined)) === undefined) for (const push of pushes) push.abandon.abort();
  const callers = await all;
  const releasedIn = performance.now() - started;
  const wokeApproved = callers.filter((c) => c.status === 200 && c.body.status === 'approved').length;
  const notWoken = callers.length - wokeApproved;
  console.log(
    `released: ${accepted} approved by their devices in ${seconds(answeredIn)}${retried > 0 ? ` (${retried} answers tried again)` : ''}, ${wokeApproved} callers woken with approved, in ${seconds(releasedIn)}` +
      (errors.length > 0 ? `; ${errors.length} answers failed after ${ANSWER_ATTEMPTS} tries, e.g. ${errors[0]}` : '') +
      (notWoken > 0 ? `; ${notWoken} callers not woken with approved (abandoned or failed), e.g. ${JSON.stringify(callers.find((c) => c.status !== 200 || c.body.status !== 'approved'))}` : ''),
  );
  await sleep(1000);
  const after = processFigures(pid);
  if (after !== undefined) console.log(`server RSS after release: ${mb(after.rssKb)}; sockets+files open ${after.fds}`);
}

/** Both push measurements on a fresh embedded store. */
export async function measurePush(): Promise<void> {
  if (ROUNDS <= 0 && PENDING <= 0) return;
  const dataDir = mkdtempSync(join(tmpdir(), 'countersign-bench-push-'));
  const { child, base, adminKey } = await startServer(dataDir, undefined);
  const { send, close } = client(base);
  try {
    const pid = child.pid ?? 0;
    const workers = Math.max(1, Math.min(CONCURRENCY, ROUNDS));
    const usersPerWorker = Math.ceil((Math.ceil(ROUNDS / workers) + WARM_UP_ROUNDS_PER_WORKER) / ROUNDS_PER_USER);
    const perUser = Math.max(1, Math.min(PER_USER, SETTINGS.challenge_max_open));
    const pendingUsers = Math.ceil(Math.max(0, PENDING) / perUser);

    const started = Date.now();
    await call(base, adminKey, 'POST', '/v1/admin/tenants', JSON.stringify({ name: TENANT }));
    await call(base, adminKey, 'PATCH', `/v1/admin/settings?tenant=${TENANT}`, JSON.stringify(SETTINGS));
    const app = await call(base, adminKey, 'POST', `/v1/admin/applications?tenant=${TENANT}`, JSON.stringify({ name: 'bench push' }));
    const names = [...Array.from({ length: ROUNDS > 0 ? workers * usersPerWorker : 0 }, (_, i) => `rt${i}@bench.example`), ...Array.from({ length: pendingUsers }, (_, i) => `pending${i}@bench.example`)];
    const csv = ['username,display name,email,phone,state', ...names.map((u, i) => `${u},Push User ${i},${u},,enforced`)].join('\n');
    await call(base, adminKey, 'POST', `/v1/admin/users/import?tenant=${TENANT}`, csv, 'text/csv');
    const devices: Device[] = new Array<Device>(names.length);
    await pool(names.length, SETUP_CONCURRENCY, async (i) => {
      devices[i] = await activate(send, adminKey, names[i] as string);
    });
    console.log(
      `\nsetup (push): tenant ${TENANT} with ${Object.entries(SETTINGS).map(([k, v]) => `${k} ${v}`).join(', ')}; ${names.length} users each with an activated authenticator (P-256) in ${seconds(Date.now() - started)}`,
    );

    if (ROUNDS > 0) {
      console.log(`\n## push round trip — embedded store (SQLite)  (${ROUNDS} rounds, ${workers} users at once, devices on their live stream, callers on ?wait=30)`);
      const rt = devices.slice(0, workers * usersPerWorker);
      await roundTrip(base, send, app.api_key, Array.from({ length: workers }, (_, w) => rt.slice(w * usersPerWorker, (w + 1) * usersPerWorker)));
    }
    if (PENDING > 0) {
      console.log(`\n## pending pushes with waiting callers — embedded store (SQLite)  (${PENDING} over ${pendingUsers} users, ${perUser} each)`);
      await capacity(pid, send, app.api_key, devices.slice(devices.length - pendingUsers));
    }
  } finally {
    close();
    await stopServer(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
