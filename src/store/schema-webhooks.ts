/** Table types of migration 010-webhooks: Events to subscribers: webhook endpoints and their delivery log, e-mail (issue 5 item 12). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by the work on this item
export interface WebhookTables {}
