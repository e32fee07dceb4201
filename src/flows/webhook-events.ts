import type { Services } from '../services.js';

/**
 * Webhooks already handled: a provider's retry, or a captured request sent again, is seen once.
 * One insert that does nothing on a known (provider, id): whoever inserts the row handles the event.
 */
export async function firstSeen(services: Services, provider: string, eventId: string): Promise<boolean> {
  const result = await services.db
    .insertInto('webhook_events')
    .values({ provider, event_id: eventId, received_at: services.clock().getTime() })
    .onConflict((oc) => oc.columns(['provider', 'event_id']).doNothing())
    .executeTakeFirst();
  return result.numInsertedOrUpdatedRows === 1n;
}
