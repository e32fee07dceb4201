/** Table types of migration 010-webhooks: Events to subscribers: webhook endpoints and their delivery log, e-mail (issue 5 item 12). */
export interface WebhookTables {
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  email_templates: EmailTemplatesTable;
  event_cursors: EventCursorsTable;
}

export interface WebhookEndpointsTable {
  id: string;
  tenant_id: string;
  /** Checked when added (https, no private or loopback host) and again, resolved, at each delivery. Shown whole only when added: listings mask the path and query, audit records carry the origin. */
  url: string;
  /** JSON list of event names and `prefix.*` filters. */
  events: string;
  description: string;
  /** The signing secret, sealed (AES-256-GCM; additional data `webhook:<id>`): shown once, used for every delivery. */
  secret_sealed: string;
  key_id: string;
  created_by: string;
  created_at: number;
  /** The audit log's last seq when the endpoint was added: it receives the events after it, not the history. */
  from_seq: number;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed';

export interface WebhookDeliveriesTable {
  id: string;
  endpoint_id: string;
  tenant_id: string;
  /** The audit record (`audit_events.seq`) this delivery carries. */
  event_seq: number;
  event_type: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  /** Claimed by a dispatcher until then (a crashed one's claim runs out). */
  locked_until: number | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export interface EmailTemplatesTable {
  tenant_id: string;
  name: string;
  subject: string;
  body: string;
  updated_by: string;
  updated_at: number;
}

export interface EventCursorsTable {
  name: string;
  seq: number;
  updated_at: number;
}
