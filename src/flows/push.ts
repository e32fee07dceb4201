import { createHash, createPublicKey, randomUUID, verify as verifySignature, type KeyObject } from 'node:crypto';
import type { Kysely } from 'kysely';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { deviceRequestMessage, PUSH_DECISIONS, pushAnswerMessage, SIGNATURE_WINDOW_MS } from '../core/push-signature.js';
import { actorOf, type Principal, type Services } from '../services.js';
import { reserveAttempt } from '../store/attempts.js';
import { takeFromWindow } from '../store/rate-windows.js';
import type { ChallengeRow, Database, TenantRow, UserRow } from '../store/schema.js';
import { decideChallenge, isOpen, OPEN_STATUSES } from './challenge-state.js';
import { reportFraud } from './fraud.js';
import { enrollmentDeviceActivated } from './enrollment.js';
import { activateDeliveredMethod, enrollTotp } from './methods.js';
import { verifyPin } from './pins.js';
import { refusedByPolicyNow } from './policies.js';
import { tenantSettings } from './tenants.js';

/**
 * Push approval with the Countersign Authenticator (Azure's "mobile app notification").
 *
 * - Activation: an administrator (or, later, the user) gets a single-use activation code — 128
 *   random bits, 10 minutes, stored only as a SHA-256 — in a link/QR code. The authenticator
 *   makes a P-256 key pair and sends the public key; only that is stored (SECURITY.md PUSH-03).
 * - A push challenge carries a 2-digit number the sign-in screen shows; the user types it into
 *   the authenticator (number matching, PUSH-01). Approve-only push exists only behind the
 *   tenant setting `push_approve_only`.
 * - An answer is signed by the device over the challenge id, the decision, the typed number
 *   and a timestamp (core/push-signature.ts); a wrong, missing or replayed signature, a wrong
 *   number, another user's challenge or a late answer is refused. Approval goes through the
 *   user's lockout in the same transaction as the decision; "deny and report fraud" follows the
 *   tenant's fraud settings.
 * - Push fatigue (PUSH-02): at most `push_limit_per_5_minutes` pushes per user in 5 minutes and
 *   `push_limit_since_success` since the last approval, refused with 429 before any device is told.
 */
export const ACTIVATION_TTL_MS = 10 * 60_000;

/** What the notifier publishes when a user gets a new push request (live streams wait on it). */
export function pushTopic(userId: string): string {
  return `push-user:${userId}`;
}

export interface PushDeviceView {
  id: string;
  name: string;
  channel: string;
  created_at: string;
  last_seen_at: string | null;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Where people and authenticators reach this server. */
export async function serverBase(services: Services): Promise<string> {
  if (services.config.publicUrl !== undefined) return services.config.publicUrl;
  // The server itself: its own address. A CLI next to a server on another port: the address that
  // server recorded when it started (and removes when it stops).
  if (ownServerUrl !== undefined) return ownServerUrl;
  const recorded = await services.db.selectFrom('store_meta').select('value').where('name', '=', SERVER_URL).executeTakeFirst();
  if (recorded !== undefined) return recorded.value;
  const host = services.config.host === '0.0.0.0' || services.config.host === '::' ? 'localhost' : services.config.host;
  return `http://${host}:${services.config.port}`;
}

/** `store_meta` name of the address the last server to start is reached at, without public_url. */
const SERVER_URL = 'server_url';

/**
 * Called by `countersign serve` once it listens: links made by a CLI on the same store (push
 * activation, enrollment) then point at this server's port even when public_url is unset.
 */
export async function recordServerUrl(services: Services, url: string): Promise<void> {
  ownServerUrl = url;
  await services.db
    .insertInto('store_meta')
    .values({ name: SERVER_URL, value: url })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value: url }))
    .execute();
}

/** Called by `countersign serve` as it stops: the address is forgotten unless another server has since recorded its own. */
export async function forgetServerUrl(services: Services): Promise<void> {
  if (ownServerUrl === undefined) return;
  await services.db.deleteFrom('store_meta').where('name', '=', SERVER_URL).where('value', '=', ownServerUrl).execute();
  ownServerUrl = undefined;
}

/** This process's own address, when it is the server (set by recordServerUrl). */
let ownServerUrl: string | undefined;

export async function startActivation(
  services: Services,
  principal: Principal,
  tenant: TenantRow,
  user: UserRow,
  // enrollment: started through an enrollment link: `guard` runs in the insert's transaction (its limits), `notAfter` caps the expiry.
  options: { withTotp?: boolean; enrollment?: { linkId: string; notAfter: number; guard: (db: Kysely<Database>, now: number) => Promise<void> } } = {},
): Promise<{ activation_url: string; activation_code: string; expires_at: string }> {
  if (options.withTotp === true && !tenantSettings(tenant).allowed_methods.includes('totp')) throw new CountersignError('FORBIDDEN', 'the tenant does not allow authenticator app codes (totp)');
  const code = services.random(16).toString('base64url');
  const now = services.clock().getTime();
  const expiresAt = Math.min(now + ACTIVATION_TTL_MS, options.enrollment?.notAfter ?? Infinity);
  await services.writes.run(async (db, record) => {
    await options.enrollment?.guard(db, now);
    await db
      .insertInto('push_activations')
      .values({ id: randomUUID(), tenant_id: tenant.id, user_id: user.id, code_hash: sha256(code), expires_at: expiresAt, used_at: null, with_totp: options.withTotp === true ? 1 : 0, created_at: now, enrollment_link_id: options.enrollment?.linkId ?? null })
      .execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'push.activation_started', target: user.id });
  });
  return { // In the fragment: browsers never send it, so the code is in no request line or access log.
    activation_url: `${await serverBase(services)}/authenticator#activate=${code}`, activation_code: code, expires_at: new Date(expiresAt).toISOString() };
}

function parsePublicKey(value: unknown): KeyObject {
  if (typeof value !== 'string' || value.length > 400) throw invalidInput('public_key', 'must be a P-256 public key (SPKI, base64)');
  try {
    const key = createPublicKey({ key: Buffer.from(value, 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error('not P-256');
    return key;
  } catch {
    throw invalidInput('public_key', 'must be a P-256 public key (SPKI, base64)');
  }
}

/**
 * What an activation link is for, without using it: the authenticator shows "Activate for
 * erin@contoso.com (contoso)?" before the user names the device, and says at once when a link was
 * already used or has expired. Knowing the code (≥ 128 bits) is what a device needs to activate,
 * so this tells its holder nothing more than activating would.
 */
export async function previewActivation(services: Services, code: unknown): Promise<{ tenant: string; username: string; expires_at: string; with_totp: boolean }> {
  if (typeof code !== 'string' || !/^[A-Za-z0-9_-]{16,64}$/.test(code)) throw invalidInput('code', 'must be the activation code of the link');
  const row = await services.db
    .selectFrom('push_activations')
    .innerJoin('users', 'users.id', 'push_activations.user_id')
    .innerJoin('tenants', 'tenants.id', 'push_activations.tenant_id')
    .select(['users.username', 'tenants.name as tenant', 'push_activations.expires_at', 'push_activations.with_totp'])
    .where('push_activations.code_hash', '=', sha256(code))
    .where('push_activations.used_at', 'is', null)
    .where('push_activations.expires_at', '>', services.clock().getTime())
    .executeTakeFirst();
  if (row === undefined) throw new CountersignError('NOT_FOUND', 'the activation code is unknown, already used or expired: ask for a new link');
  return { tenant: row.tenant, username: row.username, expires_at: new Date(Number(row.expires_at)).toISOString(), with_totp: Number(row.with_totp) === 1 };
}

/** The authenticator's side of activation: the code is used once; the device is stored with its public key only. */
export interface ActivatedDevice {
  device_id: string;
  tenant: string;
  username: string;
  /** When the activation carries one: the TOTP secret for offline codes, shown to this device only. */
  totp?: { secret: string; uri: string; algorithm: string; digits: number; period: number };
}

export async function activateDevice(services: Services, input: { code?: unknown; public_key?: unknown; name?: unknown; channel?: unknown; target?: unknown }): Promise<ActivatedDevice> {
  if (typeof input.code !== 'string' || !/^[A-Za-z0-9_-]{16,64}$/.test(input.code)) throw invalidInput('code', 'must be the activation code of the link');
  // eslint-disable-next-line no-control-regex -- shown to users and written to logs: no control characters
  if (typeof input.name !== 'string' || input.name.trim() === '' || input.name.length > 100 || /[\u0000-\u001f\u007f]/.test(input.name)) throw invalidInput('name', 'must be 1–100 characters');
  const key = parsePublicKey(input.public_key);
  const { channel, target } = parseChannel(services, input.channel, input.target);
  const now = services.clock().getTime();
  // Single use: the code is taken by one atomic UPDATE; a second use finds it taken.
  const taken = await services.db
    .updateTable('push_activations')
    .set({ used_at: now })
    .where('code_hash', '=', sha256(input.code))
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .returning(['tenant_id', 'user_id', 'with_totp', 'enrollment_link_id'])
    .executeTakeFirst();
  if (taken === undefined) throw new CountersignError('NOT_FOUND', 'the activation code is unknown, already used or expired: ask for a new link');
  const id = randomUUID();
  const publicKey = key.export({ format: 'der', type: 'spki' }).toString('base64');
  await services.db.insertInto('push_devices').values({ id, tenant_id: taken.tenant_id, user_id: taken.user_id, name: input.name.trim(), public_key: publicKey, channel, target, created_at: now, last_seen_at: now }).execute();
  const user = await services.db.selectFrom('users').innerJoin('tenants', 'tenants.id', 'users.tenant_id').select(['users.username', 'tenants.name']).where('users.id', '=', taken.user_id).executeTakeFirstOrThrow();
  await services.audit({ tenantId: taken.tenant_id, actor: 'system', action: 'push.device_activated', target: taken.user_id, detail: { device: id, name: input.name.trim() } });
  const activated: ActivatedDevice = { device_id: id, tenant: user.name, username: user.username };
  if (Number(taken.with_totp) === 1) activated.totp = await enrollDeviceTotp(services, taken.tenant_id, taken.user_id, input.name.trim());
  // Started through an enrollment link: the device is a method registered through it.
  if (taken.enrollment_link_id !== null) {
    await enrollmentDeviceActivated(services, taken.enrollment_link_id, id).catch((error: unknown) => services.log.warn({ err: error, device: id }, 'the activation could not be recorded on its enrollment link'));
  }
  return activated;
}

/**
 * The TOTP method an authenticator carries: enrolled and activated at once — its secret goes
 * straight to a device that just proved it holds its key, so no first code is needed from a person
 * and no time step is spent: the code the device shows right away signs in.
 */
async function enrollDeviceTotp(services: Services, tenantId: string, userId: string, deviceName: string): Promise<NonNullable<ActivatedDevice['totp']>> {
  const tenant = await services.db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirstOrThrow();
  const user = await services.db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirstOrThrow();
  const system: Principal = { kind: 'system' };
  const enrollment = await enrollTotp(services, system, tenant, user, { label: `Countersign Authenticator (${deviceName.slice(0, 30)})` });
  const { algorithm, digits, period } = { algorithm: 'SHA1' as const, digits: 6, period: 30 };
  await activateDeliveredMethod(services, system, tenant, user, enrollment.method.id);
  return { secret: enrollment.secret, uri: enrollment.uri, algorithm, digits, period };
}

/** How the device wants to be told of a request: `poll` (it fetches or streams), or a configured push service and its address there. */
function parseChannel(services: Services, channel: unknown, target: unknown): { channel: string; target: string | null } {
  if (channel === undefined || channel === 'poll') return { channel: 'poll', target: null };
  if (channel !== 'webpush' && channel !== 'fcm' && channel !== 'apns') throw invalidInput('channel', 'must be poll, webpush, fcm or apns');
  if (!services.channels.push.byChannel.has(channel)) throw invalidInput('channel', `this server has no ${channel} configured (push.${channel === 'webpush' ? 'web_push' : channel}); use poll`);
  if (typeof target !== 'string' || target === '' || target.length > 4096) throw invalidInput('target', `must be the device's ${channel === 'webpush' ? 'Web Push subscription (JSON)' : `${channel} token`}`);
  const problem = services.channels.push.byChannel.get(channel)?.checkTarget(target) ?? null;
  if (problem !== null) throw invalidInput('target', problem);
  return { channel, target };
}

/**
 * Tells the user's devices that use a push service (Web Push, FCM, APNs) about a new request.
 * In the background and best effort: a failed delivery never blocks sign-in (the device can
 * always fetch its pending requests); a registration the service says is gone is dropped.
 */
export function notifyDevices(services: Services, tenant: TenantRow, userId: string, challengeId: string, deviceId: string | null): void {
  void (async () => {
    let query = services.db.selectFrom('push_devices').select(['id', 'channel', 'target']).where('user_id', '=', userId).where('channel', '!=', 'poll');
    if (deviceId !== null) query = query.where('id', '=', deviceId);
    for (const device of await query.execute()) {
      const delivery = services.channels.push.byChannel.get(device.channel);
      if (delivery === undefined || device.target === null) continue;
      const result = await delivery.deliver(device.target, { challengeId, tenant: tenant.name });
      if (result.gone === true) {
        await services.db.updateTable('push_devices').set({ channel: 'poll', target: null }).where('id', '=', device.id).execute();
        services.log.info({ device: device.id, channel: device.channel }, 'a push registration is gone; the device now fetches its requests');
      } else if (!result.ok) {
        services.log.warn({ device: device.id, channel: device.channel, status: result.status, error: result.error }, 'a push notification could not be delivered');
      }
    }
  })().catch((error: unknown) => services.log.warn({ err: error }, 'push notifications failed'));
}

export async function listDevices(services: Services, userId: string): Promise<PushDeviceView[]> {
  const rows = await services.db.selectFrom('push_devices').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  return rows.map((r) => ({ id: r.id, name: r.name, channel: r.channel, created_at: new Date(Number(r.created_at)).toISOString(), last_seen_at: r.last_seen_at === null ? null : new Date(Number(r.last_seen_at)).toISOString() }));
}

export async function removeDevice(services: Services, principal: Principal, tenant: TenantRow, user: UserRow, deviceId: string): Promise<void> {
  const result = await services.db.deleteFrom('push_devices').where('id', '=', deviceId).where('user_id', '=', user.id).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw notFound(`authenticator ${deviceId}`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'push.device_removed', target: user.id, detail: { device: deviceId } });
}

/** The push methods of a user, one per activated authenticator (`push:<device id>`), for preauth and challenges. */
export async function userPushMethods(services: Services, tenant: TenantRow, userId: string): Promise<{ id: string; type: 'push'; label: string }[]> {
  if (!tenantSettings(tenant).allowed_methods.includes('push')) return [];
  const devices = await services.db.selectFrom('push_devices').select(['id', 'name']).where('user_id', '=', userId).orderBy('created_at').execute();
  return devices.map((d) => ({ id: `push:${d.id}`, type: 'push' as const, label: `Push to ${d.name}` }));
}

/** Push fatigue limits, then a 2-digit number; the caller stores the row. */
export async function preparePush(services: Services, tenant: TenantRow, userId: string, now: number): Promise<{ number: string | null; expiresAt: number; pin: boolean }> {
  const settings = tenantSettings(tenant);
  const recent = await takeFromWindow(services.db, `${tenant.id}:push:user:${userId}`, settings.push_limit_per_5_minutes, 5 * 60_000, now);
  if (!recent.allowed) throw new CountersignError('RATE_LIMITED', `too many push requests: at most ${settings.push_limit_per_5_minutes} in 5 minutes`, { retryAfter: recent.retryAfterSeconds });
  const lastSuccess = await services.db.selectFrom('challenges').select('created_at').where('user_id', '=', userId).where('type', '=', 'push').where('status', '=', 'approved').orderBy('created_at', 'desc').executeTakeFirst();
  const since = await services.db
    .selectFrom('challenges')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('user_id', '=', userId)
    .where('type', '=', 'push')
    .where('created_at', '>', Number(lastSuccess?.created_at ?? 0))
    .executeTakeFirstOrThrow();
  if (Number(since.n) >= settings.push_limit_since_success) {
    throw new CountersignError('RATE_LIMITED', `too many push requests since the last approved one (${settings.push_limit_since_success}); use another method or ask an administrator`, { retryAfter: 300 });
  }
  // 10–99: two digits the user reads off the sign-in screen.
  const number = settings.push_approve_only ? null : String(10 + (services.random(4).readUInt32BE(0) % 90));
  return { number, expiresAt: now + settings.push_ttl_seconds * 1000, pin: settings.push_pin_mode };
}

interface Device {
  id: string;
  tenant_id: string;
  user_id: string;
  public_key: string;
}

function signatureValid(device: Device, message: string, signature: unknown): boolean {
  if (typeof signature !== 'string' || !/^[A-Za-z0-9_-]{80,90}$/.test(signature)) return false;
  try {
    const key = createPublicKey({ key: Buffer.from(device.public_key, 'base64'), format: 'der', type: 'spki' });
    return verifySignature('sha256', Buffer.from(message, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}

function fresh(services: Services, timestamp: unknown): timestamp is number {
  return typeof timestamp === 'number' && Number.isInteger(timestamp) && Math.abs(timestamp - services.clock().getTime()) <= SIGNATURE_WINDOW_MS;
}

async function loadDevice(services: Services, deviceId: unknown): Promise<Device | undefined> {
  if (typeof deviceId !== 'string' || !/^[0-9a-f-]{36}$/.test(deviceId)) return undefined;
  return services.db.selectFrom('push_devices').select(['id', 'tenant_id', 'user_id', 'public_key']).where('id', '=', deviceId).executeTakeFirst();
}

/** `Authorization: Device <id>.<timestamp>.<signature>` over the request: the device, or 401. */
export async function authenticateDevice(services: Services, header: string | undefined, method: string, path: string): Promise<Device> {
  const parts = (header?.replace(/^Device\s+/i, '') ?? '').split('.');
  const [id, stamp, signature] = parts;
  const timestamp = parts.length === 3 && /^\d{1,16}$/.test(stamp ?? '') ? Number(stamp) : NaN;
  const device = await loadDevice(services, id);
  // Said plainly, so the authenticator can tell its user (device ids are random: this tells nobody anything new).
  if (device === undefined && parts.length === 3) throw new CountersignError('DEVICE_UNKNOWN', 'this authenticator is not activated on this server: an administrator removed it, or it was never activated');
  if (device === undefined || !fresh(services, timestamp) || !signatureValid(device, deviceRequestMessage(device.id, method, path, timestamp), signature)) {
    throw new CountersignError('UNAUTHORIZED', 'authorization: send "Authorization: Device <device id>.<timestamp>.<signature>" signed by an activated authenticator, within 60 s of now');
  }
  await services.db.updateTable('push_devices').set({ last_seen_at: services.clock().getTime() }).where('id', '=', device.id).execute();
  return device;
}

export interface PendingRequest {
  id: string;
  type: 'push';
  application: string | null;
  ip: string | null;
  /** Where the IP address is ("Berlin, Germany"), from the GeoIP database; null without one or for an unknown address. */
  location: string | null;
  event: { title: string; detail: string | null } | null;
  expires_at: string;
  number_required: boolean;
  /** PIN mode: approving also needs the user's PIN. */
  pin_required: boolean;
}

/** The open push requests a device may answer: its user's, sent to it or to any of their devices. */
export async function pendingForDevice(services: Services, device: Device): Promise<PendingRequest[]> {
  const rows = await services.db
    .selectFrom('challenges')
    .selectAll()
    .where('user_id', '=', device.user_id)
    .where('type', '=', 'push')
    .where('status', 'in', OPEN_STATUSES)
    .where('expires_at', '>', services.clock().getTime())
    .where((eb) => eb.or([eb('method_id', 'is', null), eb('method_id', '=', `push:${device.id}`)]))
    .orderBy('created_at', 'desc')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    type: 'push',
    application: r.app,
    ip: r.ip,
    location: services.geo.locate(r.ip),
    event: r.event_title === null ? null : { title: r.event_title, detail: r.event_detail },
    expires_at: new Date(Number(r.expires_at)).toISOString(),
    number_required: r.number !== null,
    pin_required: r.mode?.endsWith('+pin') === true,
  }));
}

export interface PushAnswer {
  device_id?: unknown;
  decision?: unknown;
  number?: unknown;
  /** PIN mode: the user's PIN (sent over TLS; not part of the signature). */
  pin?: unknown;
  timestamp?: unknown;
  signature?: unknown;
}

/** A signed answer from an authenticator. */
export async function answerPush(services: Services, challengeId: string, answer: PushAnswer): Promise<{ id: string; status: string; reason?: 'wrong_number' | 'wrong_pin' }> {
  const decision = PUSH_DECISIONS.find((d) => d === answer.decision);
  if (decision === undefined) throw invalidInput('decision', 'must be approve, deny or fraud');
  const number = answer.number ?? '';
  if (typeof number !== 'string' || !/^\d{0,4}$/.test(number)) throw invalidInput('number', 'must be the digits shown on the sign-in screen');
  const device = await loadDevice(services, answer.device_id);
  if (device === undefined || !fresh(services, answer.timestamp) || !signatureValid(device, pushAnswerMessage(challengeId, decision, number, answer.timestamp), answer.signature)) {
    services.log.warn({ challenge: challengeId }, 'refused a push answer with a missing, stale or wrong signature');
    throw new CountersignError('FORBIDDEN', 'signature: missing, more than 60 s old, or not made by an activated authenticator for this answer');
  }
  const row = await services.db.selectFrom('challenges').selectAll().where('id', '=', challengeId).executeTakeFirst();
  // Another user's challenge is absent to this device (nothing crosses users or tenants).
  if (row?.type !== 'push' || row.user_id !== device.user_id || (row.method_id !== null && row.method_id !== `push:${device.id}`)) throw notFound(`push request ${challengeId}`);
  const tenant = await services.db.selectFrom('tenants').selectAll().where('id', '=', row.tenant_id).executeTakeFirstOrThrow();
  const now = services.clock().getTime();
  if (isOpen(row.status) && Number(row.expires_at) <= now) await decideChallenge(services, row.id, 'expired');
  const current = await services.db.selectFrom('challenges').select('status').where('id', '=', row.id).executeTakeFirstOrThrow();
  if (!isOpen(current.status)) throw new CountersignError('CONFLICT', `the request is ${current.status}, no longer pending`);
  if (decision === 'fraud') {
    // Fraud reports follow the tenant's fraud alert setting: off, the answer is a plain denial.
    if (!tenantSettings(tenant).fraud_alert_enabled) return { id: row.id, status: await settlePush(services, tenant, row, false, 'denied_by_user') };
    if (!(await reportFraud(services, tenant, row, 'push'))) throw new CountersignError('CONFLICT', 'the request was decided by another answer');
    return { id: row.id, status: 'fraud' };
  }
  if (decision === 'deny') {
    // A denied push counts (PUSH-02 counts it as sent; the lockout counts it as a failure).
    await settlePush(services, tenant, row, false, 'denied_by_user');
    return { id: row.id, status: 'denied' };
  }
  const matches = row.number === null || number === row.number;
  if (matches && row.mode?.endsWith('+pin') === true) {
    const pin = answer.pin;
    if (typeof pin !== 'string' || !/^\d{4,16}$/.test(pin) || !(await verifyPin(services, row.user_id, pin))) {
      const status = await settlePush(services, tenant, row, false, 'wrong_pin');
      return status === 'denied' ? { id: row.id, status, reason: 'wrong_pin' } : { id: row.id, status };
    }
  }
  const status = await settlePush(services, tenant, row, matches, 'wrong_number');
  // The request is over either way: the user may learn which of the two they mistyped.
  return !matches && status === 'denied' ? { id: row.id, status, reason: 'wrong_number' } : { id: row.id, status };
}

/** Decides a push against the user's lockout, in one transaction with its audit record. */
async function settlePush(services: Services, tenant: TenantRow, row: ChallengeRow, approve: boolean, failReason: string): Promise<string> {
  if (approve && (await refusedByPolicyNow(services, tenant, row))) return 'denied';
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  const user = await services.db.selectFrom('users').select('username').where('id', '=', row.user_id).executeTakeFirstOrThrow();
  const policy = { threshold: settings.lockout_threshold, resetMinutes: settings.lockout_reset_minutes, lockoutMinutes: settings.lockout_minutes };
  const status = await services.writes.run(async (db, record) => {
    const reservation = await reserveAttempt(db, tenant.id, user.username, policy, now, approve ? 'success' : 'failure');
    const base = { tenantId: tenant.id, actor: 'system', target: row.user_id };
    const reason = !reservation.reserved ? 'locked_out' : approve ? null : failReason;
    const final = reason === null ? 'approved' : 'denied';
    const moved = await db
      .updateTable('challenges')
      .set({ status: final, reason, decided_at: now })
      .where('id', '=', row.id)
      .where('status', 'in', OPEN_STATUSES)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    if (moved.numUpdatedRows !== 1n) return 'closed';
    record({ ...base, action: final === 'approved' ? 'verification.approved' : 'verification.denied', detail: { challenge: row.id, method: row.method_id, ...(reason === null ? {} : { reason }) } });
    if (reservation.reserved && reservation.lockedNow) record({ ...base, action: 'user.locked_out', detail: { threshold: settings.lockout_threshold } });
    return final;
  });
  if (status === 'closed') throw new CountersignError('CONFLICT', 'the request was decided by another answer or expired');
  services.notifier.publish(row.id);
  return status;
}
