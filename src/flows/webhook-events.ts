import type { Services } from '../services.js';

/**
 * Webhooks already handled: a provider's retry, or a captured request sent again, is seen once.
 * One insert that does nothing on a known (provider, id): whoever inserts the row handles the
 * event. If handling then fails, the row goes again, so the provider's retry is handled.
 */
export async function firstSeen(services: Services, provider: string, eventId: string): Promise<boolean> {
  const result = await services.db
    .insertInto('webhook_events')
    .values({ provider, event_id: eventId, received_at: services.clock().getTime() })
    .onConflict((oc) => oc.columns(['provider', 'event_id']).doNothing())
    .executeTakeFirst();
  return result.numInsertedOrUpdatedRows === 1n;
}

/** Runs `work` for an event seen for the first time (or without an id); `duplicate` answers a repeat. */
export async function onceOnly<T>(services: Services, provider: string, eventId: string | undefined, work: () => Promise<T>, duplicate: () => T): Promise<T> {
  if (eventId === undefined || eventId === '') return work();
  if (!(await firstSeen(services, provider, eventId))) return duplicate();
  try {
    return await work();
  } catch (error) {
    await services.db.deleteFrom('webhook_events').where('provider', '=', provider).where('event_id', '=', eventId).execute();
    throw error;
  }
}

/** Forgets events older than `beforeMs` (providers retry for hours, not days). */
export async function purgeWebhookEvents(services: Services, beforeMs: number): Promise<void> {
  await services.db.deleteFrom('webhook_events').where('received_at', '<', beforeMs).execute();
}
