import type { PushConfig } from '../../config.js';
import { createApns } from './apns.js';
import { createFcm } from './fcm.js';
import type { PushDelivery } from './types.js';
import { createWebPush } from './web-push.js';

/** The push delivery adapters the configuration sets up (config.push), by channel name. */
export interface PushChannels {
  readonly byChannel: ReadonlyMap<string, PushDelivery>;
  close(): Promise<void>;
}

export function createPushChannels(config: PushConfig): PushChannels {
  const byChannel = new Map<string, PushDelivery>();
  const closers: (() => Promise<void>)[] = [];
  if (config.webPush !== undefined) byChannel.set('webpush', createWebPush(config.webPush));
  if (config.fcm !== undefined) byChannel.set('fcm', createFcm(config.fcm));
  if (config.apns !== undefined) {
    const apns = createApns(config.apns);
    byChannel.set('apns', apns);
    closers.push(() => apns.close());
  }
  return {
    byChannel,
    close: async () => {
      await Promise.all(closers.map((close) => close()));
    },
  };
}
