// The Countersign Authenticator's service worker.
//
// Offline: on install it caches the app's page (index.html) and every file the page names
// (script, stylesheet, manifest, icons, and the manifest's icons), so the app opens offline
// right after the first visit. A navigation goes to the network but falls back to the cached
// page after 3 s (or at once when offline); the built files under assets/ carry content hashes,
// never change, and come from the cache first. Whenever the page changes (an update of the
// app), the new files are cached and those the page no longer names are dropped. A full
// storage never breaks a response: caching is best effort. The API (outside the scope) is
// never cached.
//
// Web Push: a notice carries only a challenge id and a tenant, never who signs in. It becomes
// a notification that opens the app, and open windows are told at once so they look for the
// request now.
const CACHE = 'countersign-authenticator-v1';
const NETWORK_TIMEOUT_MS = 3000;

const scope = () => new URL(self.registration.scope);

function inScope(url) {
  const base = scope();
  return url.origin === base.origin && url.pathname.startsWith(base.pathname);
}

/** The app's page: the scope itself or its index.html. */
function isIndex(url) {
  const base = scope();
  return url.origin === base.origin && (url.pathname === base.pathname || url.pathname === `${base.pathname}index.html`);
}

/** Built files have content hashes in their names: a cached copy is always right. */
function isImmutable(url) {
  return url.pathname.startsWith(`${scope().pathname}assets/`);
}

function withoutHash(ref, base) {
  const url = new URL(ref, base);
  url.hash = '';
  return url;
}

/** The files index.html names (scripts, stylesheets, the manifest, icons, images), and its manifests. */
function namedBy(html) {
  const base = scope();
  const files = new Set([base.href]);
  const manifests = [];
  for (const [tag] of html.matchAll(/<(?:script|link|img)\b[^>]*>/gi)) {
    const rel = (/\srel\s*=\s*["']([^"']*)["']/i.exec(tag)?.[1] ?? '').toLowerCase();
    if (/^<link/i.test(tag) && !/\b(stylesheet|manifest|icon|apple-touch-icon|modulepreload|preload)\b/.test(rel)) continue;
    const ref = /\s(?:src|href)\s*=\s*["']([^"']+)["']/i.exec(tag)?.[1];
    if (ref === undefined) continue;
    const url = withoutHash(ref, base);
    if (!inScope(url)) continue;
    files.add(url.href);
    if (/\bmanifest\b/.test(rel)) manifests.push(url.href);
  }
  return { files, manifests };
}

/** cache.put that never fails the caller: a full storage (quota) only means less works offline. */
async function put(cache, key, response) {
  try {
    await cache.put(key, response);
  } catch {
    // best effort
  }
}

/**
 * Caches the page (`index`, or fetched) and every file it names; with `refetch`, files that
 * may change are fetched again even when cached; with `prune`, cached files the page does not
 * name are dropped.
 */
async function cacheShell({ index, refetch, prune }) {
  const base = scope();
  const cache = await caches.open(CACHE);
  const page = index ?? (await fetch(base.href, { cache: 'no-cache' }));
  if (!page.ok || page.redirected) return;
  const html = await page.clone().text();
  await put(cache, base.href, page);
  const { files, manifests } = namedBy(html);
  const take = async (href) => {
    if (!refetch || isImmutable(new URL(href))) {
      const cached = await cache.match(href);
      if (cached !== undefined) return cached;
    }
    try {
      const response = await fetch(href, { cache: 'no-cache' });
      if (!response.ok || response.redirected) return undefined;
      await put(cache, href, response.clone());
      return response;
    } catch {
      return undefined;
    }
  };
  for (const href of manifests) {
    try {
      const manifest = await (await take(href))?.json();
      for (const icon of Array.isArray(manifest?.icons) ? manifest.icons : []) {
        if (typeof icon?.src !== 'string') continue;
        const url = withoutHash(icon.src, href);
        if (inScope(url)) files.add(url.href);
      }
    } catch {
      // not JSON: its icons are not cached
    }
  }
  await Promise.all([...files].filter((href) => href !== base.href && !manifests.includes(href)).map(take));
  if (prune) {
    for (const request of await cache.keys()) if (!files.has(request.url)) await cache.delete(request);
  }
}

/** A fresh copy of the page: cache it, and when it differs from the cached one (a new version of the app), its files too. */
async function keepPage(response) {
  const cache = await caches.open(CACHE);
  const before = await cache.match(scope().href);
  const changed = before === undefined || (await before.text()) !== (await response.clone().text());
  if (changed) await cacheShell({ index: response, refetch: true, prune: true });
  else await put(cache, scope().href, response);
}

const timeout = (ms) => new Promise((resolve) => self.setTimeout(() => resolve(undefined), ms));

async function navigate(event) {
  const request = event.request;
  const url = new URL(request.url);
  const cache = await caches.open(CACHE);
  const cached = async () => (isIndex(url) ? undefined : await cache.match(request, { ignoreSearch: true })) ?? (await cache.match(scope().href));
  const network = fetch(request).then(
    (response) => ({ response }),
    (error) => ({ error }),
  );
  const first = await Promise.race([network, timeout(NETWORK_TIMEOUT_MS)]);
  if (first === undefined) {
    // The network is slow (a captive portal, a bad signal): open the cached app now.
    const fallback = await cached();
    if (fallback !== undefined) {
      event.waitUntil(network.then((late) => (late.response?.ok && isIndex(url) && !late.response.redirected ? keepPage(late.response) : undefined)).catch(() => undefined));
      return fallback;
    }
  }
  const settled = first ?? (await network);
  if (settled.error !== undefined || settled.response.status >= 500) {
    const fallback = await cached();
    if (fallback !== undefined) return fallback;
    if (settled.error !== undefined) throw settled.error;
  }
  const response = settled.response;
  if (response.ok && isIndex(url) && !response.redirected) event.waitUntil(keepPage(response.clone()).catch(() => undefined));
  return response;
}

async function appFile(event) {
  const request = event.request;
  const cache = await caches.open(CACHE);
  if (isImmutable(new URL(request.url))) {
    const hit = await cache.match(request);
    if (hit !== undefined) return hit;
  }
  try {
    const response = await fetch(request);
    if (response.ok && !response.redirected && response.type === 'basic') event.waitUntil(put(cache, request, response.clone()));
    return response;
  } catch (error) {
    const hit = await cache.match(request, { ignoreSearch: true });
    if (hit !== undefined) return hit;
    throw error;
  }
}

self.addEventListener('install', (event) => {
  void self.skipWaiting();
  // Best effort: a failure here must not keep the worker (and Web Push) from installing.
  event.waitUntil(cacheShell({ refetch: true, prune: false }).catch(() => undefined));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
      try {
        // Drop what the current page no longer names (files of an earlier version).
        const index = await (await caches.open(CACHE)).match(scope().href);
        if (index !== undefined) await cacheShell({ index, refetch: false, prune: true });
      } catch {
        // best effort
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || !inScope(url)) return;
  event.respondWith(request.mode === 'navigate' ? navigate(event) : appFile(event));
});

self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch {
    data = {};
  }
  const challengeId = typeof data?.challenge_id === 'string' ? data.challenge_id : undefined;
  event.waitUntil(
    (async () => {
      // Open windows look for the request at once (their live stream may be asleep or dead).
      const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
      for (const client of windows) if (client.url.startsWith(self.registration.scope)) client.postMessage({ type: 'countersign-push', challenge_id: challengeId ?? null });
      await self.registration.showNotification('Sign-in request', {
        body: 'Open Countersign Authenticator to approve or deny it.',
        tag: challengeId ?? 'countersign-push',
        icon: 'icon-192.png',
        requireInteraction: true,
        data: { url: self.registration.scope },
      });
    })(),
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
