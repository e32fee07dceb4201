/**
 * Typed events (issue 5 item 12). Every decision and change Countersign records in the audit log
 * is an event: its name is the audit action (`verification.approved`, `user.blocked`, …) and its
 * payload the audit record's detail. This module is the contract subscribers (webhooks, e-mail)
 * rely on: the names, the shape of each payload, and the JSON a webhook receives. Pure: no I/O.
 *
 * Payload values are identifiers, states and counts only — never a code, secret, password or key
 * (the audit log's own rule, SECURITY.md LOG-01).
 */
type Scalar = string | number | boolean | null;

/** A payload with the fields every record of that name carries, and possibly more. */
type Payload<T extends Record<string, Scalar>> = T & Record<string, Scalar>;
type Detail = Record<string, Scalar>;

export interface EventPayloads {
  // Decisions (the Auth API).
  'verification.approved': Payload<{ method?: string }>;
  'verification.denied': Payload<{ reason: string }>;
  'verification.failed': Detail;
  'preauth.decided': Payload<{ result: string; reason: string }>;
  'challenge.created': Detail;
  'otp.replay': Detail;
  // Users.
  'user.created': Detail;
  'user.updated': Detail;
  'user.deleted': Payload<{ username: string }>;
  /** `from` and `to` are MFA states: disabled, enabled, enforced. */
  'user.state_changed': Payload<{ from: string; to: string }>;
  'users.state_changed': Payload<{ from: string; to: string; users: number }>;
  'users.states_set': Payload<{ changed: number; refused: number }>;
  'users.imported': Payload<{ created: number; updated: number; refused: number }>;
  'user.blocked': Payload<{ reason?: string; until?: string | null }>;
  'user.unblocked': Detail;
  'user.locked_out': Detail;
  'user.unlocked': Detail;
  'user.pin_set': Detail;
  'user.pin_cleared': Detail;
  // Fraud (Azure's fraud alert).
  'fraud.reported': Payload<{ challenge: string; source: string; ip: string | null; app: string | null }>;
  // One-time bypass.
  'bypass.granted': Payload<{ bypass: string; username: string; seconds: number; reason: string }>;
  'bypass.used': Payload<{ bypass: string }>;
  'bypass.expired': Payload<{ bypass: string }>;
  'bypass.revoked': Payload<{ bypass: string }>;
  // App passwords and remembered devices.
  'app_password.created': Payload<{ app_password: string; name: string }>;
  'app_password.used': Detail;
  'app_password.denied': Detail;
  'app_password.revoked': Detail;
  'app_password.revoked_all': Detail;
  'remembered_devices.revoked': Detail;
  // Methods, tokens, phones, push devices.
  'method.enrollment_started': Detail;
  'method.activated': Detail;
  'method.activation_failed': Detail;
  'method.default_set': Detail;
  'method.deleted': Detail;
  'token.assigned': Detail;
  'token.unassigned': Detail;
  'token.deleted': Detail;
  'token.resynced': Detail;
  'token.resync_failed': Detail;
  'tokens.imported': Detail;
  'phone.verification_started': Detail;
  'phone.verified': Detail;
  'phone.preregistered': Detail;
  'phone.text_sent': Detail;
  'phone.call_placed': Detail;
  'push.activation_started': Detail;
  'push.device_activated': Detail;
  'push.device_removed': Detail;
  // Self-service enrollment (links, the registration campaign).
  'enrollment.link_created': Detail;
  'enrollment.link_revoked': Detail;
  'enrollment.totp_started': Detail;
  'enrollment.phone_started': Detail;
  'enrollment.push_started': Detail;
  'enrollment.method_registered': Detail;
  'enrollment.completed': Detail;
  'registration_campaign.links_created': Detail;
  'registration_campaign.snoozed': Detail;
  // Conditional access: policies and named locations.
  'policy.created': Detail;
  'policy.updated': Detail;
  'policy.deleted': Detail;
  'policy.reordered': Detail;
  'named_location.created': Detail;
  'named_location.deleted': Detail;
  // Tenants, settings, keys, applications.
  'tenant.created': Detail;
  'tenant.deleted': Detail;
  'settings.updated': Detail;
  'greeting.set': Detail;
  'greeting.deleted': Detail;
  'email_template.updated': Payload<{ name: string }>;
  /** `origin`: the endpoint's scheme, host and port only — a receiver's path or query may hold a credential. */
  'webhook.created': Payload<{ webhook: string; origin: string }>;
  'webhook.deleted': Payload<{ webhook: string; origin: string }>;
  'webhook.redelivery_requested': Payload<{ webhook: string; delivery: string }>;
  'application.created': Detail;
  'application.deleted': Detail;
  'application_key.created': Detail;
  'application_key.revoked': Detail;
  'admin_key.created': Detail;
  'admin_key.revoked': Detail;
  'keys.rotated': Detail;
  'keys.rewrapped': Detail;
  'keys.retired': Detail;
  // Usage and licensing: enabled users went over the tenant's seat count.
  'usage.seats_exceeded': Payload<{ seats: number; enabled_users: number }>;
  /** Back at or under the seat count after having been over it. */
  'usage.seats_within_limit': Payload<{ seats: number; enabled_users: number }>;
}

export type EventName = keyof EventPayloads;

const NAMES: Record<EventName, true> = {
  'verification.approved': true,
  'verification.denied': true,
  'verification.failed': true,
  'preauth.decided': true,
  'challenge.created': true,
  'otp.replay': true,
  'user.created': true,
  'user.updated': true,
  'user.deleted': true,
  'user.state_changed': true,
  'users.state_changed': true,
  'users.states_set': true,
  'users.imported': true,
  'user.blocked': true,
  'user.unblocked': true,
  'user.locked_out': true,
  'user.unlocked': true,
  'user.pin_set': true,
  'user.pin_cleared': true,
  'fraud.reported': true,
  'bypass.granted': true,
  'bypass.used': true,
  'bypass.expired': true,
  'bypass.revoked': true,
  'app_password.created': true,
  'app_password.used': true,
  'app_password.denied': true,
  'app_password.revoked': true,
  'app_password.revoked_all': true,
  'remembered_devices.revoked': true,
  'method.enrollment_started': true,
  'method.activated': true,
  'method.activation_failed': true,
  'method.default_set': true,
  'method.deleted': true,
  'token.assigned': true,
  'token.unassigned': true,
  'token.deleted': true,
  'token.resynced': true,
  'token.resync_failed': true,
  'tokens.imported': true,
  'phone.verification_started': true,
  'phone.verified': true,
  'phone.preregistered': true,
  'phone.text_sent': true,
  'phone.call_placed': true,
  'push.activation_started': true,
  'push.device_activated': true,
  'push.device_removed': true,
  'enrollment.link_created': true,
  'enrollment.link_revoked': true,
  'enrollment.totp_started': true,
  'enrollment.phone_started': true,
  'enrollment.push_started': true,
  'enrollment.method_registered': true,
  'enrollment.completed': true,
  'registration_campaign.links_created': true,
  'registration_campaign.snoozed': true,
  'policy.created': true,
  'policy.updated': true,
  'policy.deleted': true,
  'policy.reordered': true,
  'named_location.created': true,
  'named_location.deleted': true,
  'tenant.created': true,
  'tenant.deleted': true,
  'settings.updated': true,
  'greeting.set': true,
  'greeting.deleted': true,
  'email_template.updated': true,
  'webhook.created': true,
  'webhook.deleted': true,
  'webhook.redelivery_requested': true,
  'application.created': true,
  'application.deleted': true,
  'application_key.created': true,
  'application_key.revoked': true,
  'admin_key.created': true,
  'admin_key.revoked': true,
  'keys.rotated': true,
  'keys.rewrapped': true,
  'keys.retired': true,
  'usage.seats_exceeded': true,
  'usage.seats_within_limit': true,
};

/** Every event name, sorted. */
export const EVENT_NAMES: readonly EventName[] = Object.freeze((Object.keys(NAMES) as EventName[]).sort());

export function isEventName(name: string): name is EventName {
  return Object.hasOwn(NAMES, name);
}

/**
 * An event as subscribers see it (and as a webhook's JSON body carries it). `id` is stable
 * (`evt_<audit seq>`): a receiver that gets the same event twice (a retry after a timeout, a
 * redelivery) recognizes it.
 */
export interface CountersignEvent<N extends string = string> {
  id: string;
  type: N;
  /** ISO 8601, UTC. */
  created_at: string;
  tenant_id: string | null;
  /** Who acted: `admin-key:<id>`, `application:<id>`, `cli`, `system`. */
  actor: string;
  /** What it happened to: a user, method, tenant or key id. */
  target: string | null;
  data: N extends EventName ? EventPayloads[N] : Detail;
}

/** The event of one committed audit record. */
export function eventOf(record: { seq: number; at: number; tenant_id: string | null; actor: string; action: string; target: string | null; detail: Record<string, unknown> }): CountersignEvent {
  return {
    id: `evt_${record.seq}`,
    type: record.action,
    created_at: new Date(record.at).toISOString(),
    tenant_id: record.tenant_id,
    actor: record.actor,
    target: record.target,
    data: record.detail as Detail,
  };
}

/**
 * An endpoint's filter: `*` (everything), an event name, or `prefix.*` (`bypass.*`: every bypass
 * event). Returns the filter as stored, or why it is refused.
 */
export function checkEventFilter(filter: string): { filter: string } | { error: string } {
  if (filter === '*') return { filter };
  if (isEventName(filter)) return { filter };
  if (/^[a-z_]+\.\*$/.test(filter)) {
    const prefix = filter.slice(0, -1);
    if (EVENT_NAMES.some((name) => name.startsWith(prefix))) return { filter };
  }
  return { error: `"${filter.slice(0, 60)}" is not an event name or a prefix.* filter (e.g. fraud.reported, bypass.*, *)` };
}

/** Whether an event of `type` passes any of `filters`. */
export function matchesEventFilters(filters: readonly string[], type: string): boolean {
  return filters.some((filter) => filter === '*' || filter === type || (filter.endsWith('.*') && type.startsWith(filter.slice(0, -1))));
}
