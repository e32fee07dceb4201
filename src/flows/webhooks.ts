import { createHmac, randomUUID } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { WebhooksConfig } from '../config.js';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { checkEventFilter, eventOf } from '../core/events.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import type { WebhookDeliveriesTable, WebhookEndpointsTable } from '../store/schema-webhooks.js';

/**
 * Webhooks (issue 5 item 12): a tenant's HTTPS endpoints receive its events as signed JSON.
 *
 * - Each endpoint has a secret (`whsec_…`, 256 random bits) shown once when it is added and kept
 *   sealed (store/secret-box.ts; additional data `webhook:<id>`), since every delivery needs it.
 * - A delivery is a POST of the event (core/events.ts: `{id, type, created_at, tenant_id, actor,
 *   target, data}`) with `Countersign-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
 *   "<t>.<body>")>`. A receiver recomputes the HMAC over the timestamp, a dot and the raw body,
 *   compares in constant time, and refuses a timestamp more than 5 minutes old (replays).
 * - A 2xx answer delivers it. Anything else (or no answer in 10 s) is retried after 1 min,
 *   5 min, 30 min, 2 h, 6 h, 12 h and 24 h; after the 8th attempt the delivery is `failed`. An
 *   administrator can ask for one delivery again (`redeliver`).
 * - SSRF: an endpoint is https only (http only with `webhooks.allow_http`), and must not point at a
 *   loopback, private, link-local or otherwise special address (`webhooks.allow_private` lifts
 *   that for tests and internal receivers). The host name is resolved at every delivery and
 *   the connection goes to the address that was checked, so DNS cannot swap in an internal
 *   address after the check. Redirects are not followed.
 * - Deliveries are rows (`webhook_deliveries`), claimed with one conditional UPDATE before they
 *   are sent, so several servers over one PostgreSQL never send one delivery twice at once.
 *   Delivery is at least once (a receiver that answers after the timeout gets a retry): receivers
 *   dedupe by the event id.
 * - The URL is shown whole only when the endpoint is added: listings mask its path and query, and
 *   the audit log (hence events) carries its origin only — receivers often keep a credential there.
 */
export const MAX_WEBHOOKS_PER_TENANT = 20;
export const WEBHOOK_MAX_ATTEMPTS = 8;
/** Wait before attempt n+1 after attempt n failed. */
export const WEBHOOK_BACKOFF_MS = [60_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000, 6 * 3_600_000, 12 * 3_600_000, 24 * 3_600_000];
const TIMEOUT_MS = 10_000;
/** A sender holds a delivery it claimed this long; one that crashed lets go after it. */
const CLAIM_MS = 2 * 60_000;
export const SIGNATURE_HEADER = 'countersign-signature';

export interface WebhookView {
  id: string;
  url: string;
  events: string[];
  description: string;
  created_at: string;
  created_by: string;
}

export interface DeliveryView {
  id: string;
  event_id: string;
  event_type: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(Number(ms)).toISOString());

/** An endpoint as listings show it (`full`: only in the answer that adds it). */
function view(row: WebhookEndpointsTable, full = false): WebhookView {
  return { id: row.id, url: full ? row.url : maskedWebhookUrl(row.url), events: JSON.parse(row.events) as string[], description: row.description, created_at: iso(row.created_at) ?? '', created_by: row.created_by };
}

function deliveryView(row: WebhookDeliveriesTable): DeliveryView {
  return {
    id: row.id,
    event_id: `evt_${Number(row.event_seq)}`,
    event_type: row.event_type,
    status: row.status,
    attempts: Number(row.attempts),
    next_attempt_at: row.status === 'pending' ? iso(row.next_attempt_at) : null,
    last_status_code: row.last_status_code === null ? null : Number(row.last_status_code),
    last_error: row.last_error,
    created_at: iso(row.created_at) ?? '',
    delivered_at: iso(row.delivered_at),
  };
}

/**
 * Whether an address may be called: public unicast only, unless private ones are allowed.
 *
 * IPv6 forms that carry an IPv4 address are judged by what they reach, not by ipaddr.js's label:
 * IPv4-mapped (::ffff:0:0/96) by the IPv4 address in it; IPv4-compatible (::/96, deprecated —
 * `::7f00:1` is 127.0.0.1 to some stacks, and ipaddr.js calls it unicast) and NAT64
 * (64:ff9b::/96, 64:ff9b:1::/48: a gateway that forwards to the IPv4 address in it, private ones
 * included) are refused outright.
 */
export function addressAllowed(address: string, config: WebhooksConfig): boolean {
  if (config.allowPrivate) return true;
  try {
    let parsed = ipaddr.parse(address);
    if (parsed.kind() === 'ipv6') {
      const v6 = parsed as ipaddr.IPv6;
      const parts = v6.parts;
      if (parts.slice(0, 6).every((p) => p === 0)) return false;
      if (parts[0] === 0x64 && parts[1] === 0xff9b && (parts.slice(2, 6).every((p) => p === 0) || parts[2] === 1)) return false;
      if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
    }
    return parsed.range() === 'unicast';
  } catch {
    return false;
  }
}

/** An endpoint URL with only its scheme, host and port: what the audit log and events carry. */
export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(invalid URL)';
  }
}

/**
 * An endpoint URL as listings show it: scheme, host and port, the path and query masked
 * (`https://hooks.slack.com/…`) — receivers often keep a credential there. The full URL is in
 * the answer that adds the endpoint, once.
 */
export function maskedWebhookUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.pathname === '/' && parsed.search === '' ? `${parsed.origin}/` : `${parsed.origin}/…`;
  } catch {
    return '(invalid URL)';
  }
}

const URL_HELP = 'must be an https:// URL of a public host, such as https://hooks.contoso.com/countersign';

/** The endpoint URL as it will be called, or INVALID_INPUT naming `url`. */
export function checkWebhookUrl(value: unknown, config: WebhooksConfig): string {
  if (typeof value !== 'string' || value.length > 2000 || /[\s\p{Cc}]/u.test(value)) throw invalidInput('url', URL_HELP);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidInput('url', URL_HELP);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && config.allowHttp)) throw invalidInput('url', `${URL_HELP} (http:// only with webhooks.allow_http)`);
  if (url.username !== '' || url.password !== '') throw invalidInput('url', `${URL_HELP}, without a user name or password in it`);
  if (url.hash !== '') throw invalidInput('url', `${URL_HELP}, without a #fragment`);
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(host) !== 0) {
    if (!addressAllowed(host, config)) throw invalidInput('url', `${host} is a loopback, private or reserved address: webhooks go to public hosts only (webhooks.allow_private)`);
  } else if (!config.allowPrivate && (host === 'localhost' || /\.(localhost|local|internal|localdomain|home\.arpa)$/.test(host) || !host.includes('.'))) {
    throw invalidInput('url', `${host} is a local host name: webhooks go to public hosts only (webhooks.allow_private)`);
  }
  return url.href;
}

function checkFilters(value: unknown): string[] {
  const list = value === undefined ? ['*'] : value;
  if (!Array.isArray(list) || list.length === 0 || list.length > 100 || list.some((f) => typeof f !== 'string')) {
    throw invalidInput('events', 'must be a non-empty list of event names or prefix.* filters, e.g. ["fraud.reported", "bypass.*"], or ["*"] for all');
  }
  const out: string[] = [];
  for (const filter of list as string[]) {
    const checked = checkEventFilter(filter.trim());
    if ('error' in checked) throw invalidInput('events', checked.error);
    if (!out.includes(checked.filter)) out.push(checked.filter);
  }
  return out;
}

/** Adds an endpoint; the secret is in the answer this once. */
export async function createWebhook(services: Services, principal: Principal, tenant: TenantRow, input: { url?: unknown; events?: unknown; description?: unknown }): Promise<WebhookView & { secret: string }> {
  const url = checkWebhookUrl(input.url, services.config.webhooks);
  const events = checkFilters(input.events);
  const description = input.description === undefined ? '' : typeof input.description === 'string' ? input.description.trim() : null;
  if (description === null || description.length > 200 || /\p{Cc}/u.test(description)) throw invalidInput('description', 'must be at most 200 characters on one line');
  const id = randomUUID();
  const secret = `whsec_${services.random(32).toString('base64url')}`;
  const { sealed, keyId } = await services.secrets.seal(Buffer.from(secret, 'utf8'), `webhook:${id}`);
  const now = services.clock().getTime();
  const row: WebhookEndpointsTable = { id, tenant_id: tenant.id, url, events: JSON.stringify(events), description, secret_sealed: sealed, key_id: keyId, created_by: actorOf(principal), created_at: now, from_seq: 0 };
  await services.writes.run(async (db, record) => {
    // The dispatcher's cursor first (PostgreSQL: FOR UPDATE; SQLite: group commit holds the write
    // lock): a fan-out transaction runs wholly before this one — and the events it hands out are
    // at or before the head read below — or wholly after, and then it sees this endpoint. Without
    // it, a fan-out could move the cursor past events after from_seq without seeing the endpoint.
    if (services.store.dialect === 'postgres') await db.selectFrom('event_cursors').select('seq').where('name', '=', 'dispatcher').forUpdate().executeTakeFirst();
    const head = await db.selectFrom('audit_head').select('seq').where('id', '=', 1).executeTakeFirst();
    row.from_seq = Number(head?.seq ?? 0);
    const count = await db.selectFrom('webhook_endpoints').select((eb) => eb.fn.countAll<number>().as('n')).where('tenant_id', '=', tenant.id).executeTakeFirstOrThrow();
    if (Number(count.n) >= MAX_WEBHOOKS_PER_TENANT) throw new CountersignError('CONFLICT', `tenant ${tenant.name} has ${MAX_WEBHOOKS_PER_TENANT} webhooks, the most it may have: remove one first`);
    await db.insertInto('webhook_endpoints').values(row).execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'webhook.created', target: id, detail: { webhook: id, origin: webhookOrigin(url), events: events.join(',') } });
  });
  return { ...view(row, true), secret };
}

export async function listWebhooks(services: Services, tenant: TenantRow): Promise<WebhookView[]> {
  const rows = await services.db.selectFrom('webhook_endpoints').selectAll().where('tenant_id', '=', tenant.id).orderBy('created_at').orderBy('id').execute();
  return rows.map((row) => view(row));
}

async function findWebhook(services: Services, tenant: TenantRow, id: string): Promise<WebhookEndpointsTable> {
  const row = await services.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).where('tenant_id', '=', tenant.id).executeTakeFirst();
  if (row === undefined) throw notFound(`webhook ${id.slice(0, 60)}`);
  return row;
}

/** Removes an endpoint and its delivery log; nothing more is sent to it. */
export async function deleteWebhook(services: Services, principal: Principal, tenant: TenantRow, id: string): Promise<void> {
  const row = await findWebhook(services, tenant, id);
  await services.writes.run(async (db, record) => {
    await db.deleteFrom('webhook_deliveries').where('endpoint_id', '=', row.id).execute();
    await db.deleteFrom('webhook_endpoints').where('id', '=', row.id).execute();
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'webhook.deleted', target: row.id, detail: { webhook: row.id, origin: webhookOrigin(row.url) } });
  });
}

/** The endpoint's delivery log, newest first. */
export async function listDeliveries(services: Services, tenant: TenantRow, id: string, limit = 50): Promise<DeliveryView[]> {
  const endpoint = await findWebhook(services, tenant, id);
  const rows = await services.db.selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpoint.id).orderBy('event_seq', 'desc').limit(limit).execute();
  return rows.map(deliveryView);
}

/** Sends one delivery again, now (delivered or failed ones too); the dispatcher picks it up. */
export async function redeliver(services: Services, principal: Principal, tenant: TenantRow, id: string, deliveryId: string): Promise<DeliveryView> {
  const endpoint = await findWebhook(services, tenant, id);
  const now = services.clock().getTime();
  await services.writes.run(async (db, record) => {
    const updated = await db
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', next_attempt_at: now, locked_until: null, updated_at: now })
      .where('id', '=', deliveryId)
      .where('endpoint_id', '=', endpoint.id)
      .executeTakeFirst();
    if (updated.numUpdatedRows !== 1n) throw notFound(`delivery ${deliveryId.slice(0, 60)} of webhook ${endpoint.id}`);
    record({ tenantId: tenant.id, actor: actorOf(principal), action: 'webhook.redelivery_requested', target: endpoint.id, detail: { webhook: endpoint.id, delivery: deliveryId } });
  });
  const row = await services.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', deliveryId).executeTakeFirstOrThrow();
  return deliveryView(row);
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function signWebhook(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex')}`;
}

/**
 * A DNS lookup for the HTTP client that refuses addresses webhooks may not reach: the connection
 * is made to the address checked here, so a name that resolves differently a moment later (DNS
 * rebinding) cannot lead it elsewhere.
 */
export function guardedLookup(config: WebhooksConfig, resolve: typeof dnsLookup = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error !== null) {
        callback(error, '', 0);
        return;
      }
      const list = (Array.isArray(addresses) ? addresses : []);
      const refused = list.find((a) => !addressAllowed(a.address, config));
      if (list.length === 0 || refused !== undefined) {
        callback(Object.assign(new Error(`${hostname} resolves to ${refused?.address ?? 'nothing'}, a loopback, private or reserved address`), { code: 'EADDRREFUSED' }), '', 0);
        return;
      }
      const first = list[0] as LookupAddress;
      if (options.all === true) callback(null, list, 0);
      else callback(null, first.address, first.family);
    });
  };
}

/** One POST; resolves with the status code, or rejects with a short reason. */
function post(url: string, body: string, headers: Record<string, string>, config: WebhooksConfig): Promise<number> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    // Checked again at each delivery: the configuration may have changed since the endpoint was added.
    if (target.protocol !== 'https:' && !(target.protocol === 'http:' && config.allowHttp)) {
      reject(new Error(`${target.protocol}// is not allowed (https only, unless webhooks.allow_http)`));
      return;
    }
    const host = target.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0 && !addressAllowed(host, config)) {
      reject(new Error(`${host} is a loopback, private or reserved address`));
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const request = client.request(target, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, lookup: guardedLookup(config), timeout: TIMEOUT_MS }, (response) => {
      // The answer's body is not kept; read (a little of) it so the socket is freed.
      let read = 0;
      response.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read > 65_536) response.destroy();
      });
      response.on('end', () => resolve(response.statusCode ?? 0));
      response.on('close', () => resolve(response.statusCode ?? 0));
      response.on('error', () => resolve(response.statusCode ?? 0));
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    request.on('error', (error: NodeJS.ErrnoException) => reject(new Error(error.message.slice(0, 200))));
    request.end(body);
  });
}

/** Sends the webhook deliveries that are due (at most `limit`, side by side); returns how many were delivered. */
export async function sendDueWebhooks(services: Services, limit = 20): Promise<number> {
  const now = services.clock().getTime();
  const due = await services.db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
  const results = await Promise.all(due.map((row) => attemptDelivery(services, row, now)));
  return results.filter(Boolean).length;
}

/**
 * Claims and sends one delivery read as due at `now`; false when it was not delivered (or not
 * claimed). Exported for tests: a second server holding the same, now stale, row.
 */
export async function attemptDelivery(services: Services, row: WebhookDeliveriesTable, now: number): Promise<boolean> {
  // The claim: of several servers, one sends it — and only while it is still the row that was
  // read as due: still due (not put back with a later retry time by a server that just tried it)
  // and with the attempts read (no other server tried it since).
  const claimed = await services.db
    .updateTable('webhook_deliveries')
    .set((eb) => ({ locked_until: now + CLAIM_MS, attempts: eb('attempts', '+', 1), updated_at: now }))
    .where('id', '=', row.id)
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where('attempts', '=', Number(row.attempts))
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<', now)]))
    .executeTakeFirst();
  if (claimed.numUpdatedRows !== 1n) return false;
  const attempts = Number(row.attempts) + 1;
  let statusCode: number | null = null;
  let error: string | null = null;
  const endpoint = await services.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', row.endpoint_id).executeTakeFirst();
  const record = await services.db.selectFrom('audit_events').select(['seq', 'at', 'tenant_id', 'actor', 'action', 'target', 'detail']).where('seq', '=', row.event_seq).executeTakeFirst();
  if (endpoint === undefined || record === undefined) {
    error = endpoint === undefined ? 'the webhook was removed' : 'the event is not in the audit log';
  } else {
    try {
      const secret = (await services.secrets.open(endpoint.secret_sealed, endpoint.key_id, `webhook:${endpoint.id}`)).toString('utf8');
      const body = JSON.stringify(eventOf({ ...record, seq: Number(record.seq), at: Number(record.at), detail: JSON.parse(record.detail) as Record<string, unknown> }));
      const timestamp = Math.floor(services.clock().getTime() / 1000);
      statusCode = await post(
        endpoint.url,
        body,
        {
          'content-type': 'application/json',
          'user-agent': 'Countersign-Webhooks/1',
          [SIGNATURE_HEADER]: signWebhook(secret, body, timestamp),
          'countersign-event': record.action,
          'countersign-delivery': row.id,
        },
        services.config.webhooks,
      );
      if (statusCode < 200 || statusCode > 299) error = `answered HTTP ${statusCode}`;
    } catch (failure) {
      error = failure instanceof Error ? failure.message : 'delivery failed';
    }
  }
  const at = services.clock().getTime();
  if (error === null) {
    await services.db.updateTable('webhook_deliveries').set({ status: 'delivered', delivered_at: at, last_status_code: statusCode, last_error: null, locked_until: null, next_attempt_at: null, updated_at: at }).where('id', '=', row.id).execute();
    return true;
  }
  const last = attempts >= WEBHOOK_MAX_ATTEMPTS || endpoint === undefined || record === undefined;
  await services.db
    .updateTable('webhook_deliveries')
    .set({ status: last ? 'failed' : 'pending', last_status_code: statusCode, last_error: error.slice(0, 300), locked_until: null, next_attempt_at: last ? null : at + (WEBHOOK_BACKOFF_MS[attempts - 1] ?? 24 * 3_600_000), updated_at: at })
    .where('id', '=', row.id)
    .execute();
  services.log.warn({ webhook: row.endpoint_id, delivery: row.id, attempts, status_code: statusCode, error: error.slice(0, 300) }, last ? 'a webhook delivery failed; giving up' : 'a webhook delivery failed; it will be retried');
  return false;
}
