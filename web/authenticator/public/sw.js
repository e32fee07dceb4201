// The Countersign Authenticator's service worker: keeps the app's own files for offline use
// (so codes still show without a network), never caches the API, and turns a Web Push notice
// (which carries only a challenge id and a tenant, never who signs in) into a notification
// that opens the app.
const CACHE = 'countersign-authenticator-v1';

self.addEventListener('install', () => self.skipWaiting());

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      await self.clients.claim();
    })(),
  );
});

// The app's own files: from the network when it answers (always current), else from the cache.
self.addEventListener('fetch', (event) => {
  const request = event.request;
  const scope = new URL(self.registration.scope);
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        if (response.ok) await cache.put(request, response.clone());
        return response;
      } catch (error) {
        const cached = (await cache.match(request, { ignoreSearch: true })) ?? (request.mode === 'navigate' ? await cache.match(scope.href) : undefined);
        if (cached !== undefined) return cached;
        throw error;
      }
    })(),
  );
});

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  event.waitUntil(
    self.registration.showNotification('Sign-in request', {
      body: 'Open Countersign Authenticator to approve or deny it.',
      tag: typeof data.challenge_id === 'string' ? data.challenge_id : 'countersign-push',
      icon: 'icon-192.png',
      requireInteraction: true,
      data: { url: self.registration.scope },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const all = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      for (const client of all) if (client.url.startsWith(self.registration.scope)) return client.focus();
      return self.clients.openWindow(self.registration.scope);
    })(),
  );
});
