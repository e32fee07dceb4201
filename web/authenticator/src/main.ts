/**
 * The Countersign Authenticator web app: activation from a link, the sign-in requests waiting
 * for an answer (with number matching, PIN and fraud reports), and offline codes, for every
 * account this browser holds (accounts.ts). Installable: a manifest and a service worker
 * (public/sw.js) that keeps the app usable offline and shows Web Push notices.
 */
import './style.css';
import type { PushDecision } from '../../../src/core/push-signature.js';
import { listAccounts, removeAccount, saveAccount, type Account } from './accounts.js';
import { currentCode } from './codes.js';
import { activate, answer, ApiError, newKeyPair, webPushKey, type PendingRequest } from './device-api.js';
import { byId, h } from './dom.js';
import { watchAccount, type LinkState } from './live-stream.js';

interface Shown {
  account: Account;
  request: PendingRequest;
}

const accounts: Account[] = [];
const pending = new Map<string, PendingRequest[]>();
const links = new Map<string, { state: LinkState; detail?: string | undefined }>();
const watchers = new Map<string, AbortController>();
const cards = new Map<string, HTMLElement>();

// ---------------------------------------------------------------- accounts

function accountLabel(account: Account): string {
  return `${account.username} · ${account.tenant}`;
}

function linkText(deviceId: string): string {
  const link = links.get(deviceId);
  switch (link?.state) {
    case 'live':
      return 'Receiving requests';
    case 'polling':
      return link.detail === undefined ? 'Checking for requests every few seconds' : `Checking every few seconds (${link.detail})`;
    case 'refused':
      return `The server refused this authenticator: ${link.detail ?? 'no reason given'}`;
    default:
      return 'Connecting…';
  }
}

function renderAccounts(): void {
  const list = byId<HTMLUListElement>('account-list');
  byId('no-accounts').hidden = accounts.length > 0;
  list.replaceChildren(
    ...accounts.map((account) => {
      const confirmRow = h(
        'div',
        { class: 'confirm', hidden: true },
        h('span', {}, 'Remove this account from this browser? Ask your administrator to remove the device on the server too.'),
        h('button', { type: 'button', class: 'danger', onclick: () => void forget(account) }, 'Remove'),
        h('button', { type: 'button', onclick: () => (confirmRow.hidden = true) }, 'Keep'),
      );
      return h(
        'li',
        { class: 'account', 'data-device': account.deviceId },
        h('div', { class: 'who' }, h('strong', {}, account.username), h('span', { class: 'tenant' }, account.tenant)),
        h('div', { class: 'link', 'data-link': account.deviceId }, linkText(account.deviceId)),
        account.totp === null
          ? null
          : h(
              'div',
              { class: 'code-row' },
              h('output', { class: 'code', 'data-code': account.deviceId, 'aria-label': `Code for ${accountLabel(account)}` }),
              h('progress', { class: 'countdown', 'data-countdown': account.deviceId, max: String(account.totp.period), value: '0' }),
              h('span', { class: 'remaining', 'data-remaining': account.deviceId }),
            ),
        h('div', { class: 'device' }, `This device: ${account.deviceName}`),
        h('button', { type: 'button', class: 'link-button', onclick: () => (confirmRow.hidden = false) }, 'Remove…'),
        confirmRow,
      );
    }),
  );
  tick();
}

function updateLink(deviceId: string): void {
  const element = document.querySelector<HTMLElement>(`[data-link="${CSS.escape(deviceId)}"]`);
  if (element !== null) {
    element.textContent = linkText(deviceId);
    element.dataset['state'] = links.get(deviceId)?.state ?? 'connecting';
  }
}

function watch(account: Account): void {
  const controller = new AbortController();
  watchers.set(account.deviceId, controller);
  void watchAccount(
    account,
    {
      onRequests: (requests) => {
        pending.set(account.deviceId, requests);
        renderRequests();
      },
      onState: (state, detail) => {
        links.set(account.deviceId, { state, detail });
        updateLink(account.deviceId);
        if (state === 'refused') {
          pending.delete(account.deviceId);
          renderRequests();
        }
      },
    },
    controller.signal,
  );
}

async function forget(account: Account): Promise<void> {
  watchers.get(account.deviceId)?.abort();
  watchers.delete(account.deviceId);
  pending.delete(account.deviceId);
  await removeAccount(account.deviceId);
  accounts.splice(accounts.indexOf(account), 1);
  renderAccounts();
  renderRequests();
  toast(`Removed ${accountLabel(account)} from this browser.`);
}

// ---------------------------------------------------------------- requests

function shownRequests(): Shown[] {
  const seen = new Set<string>();
  const shown: Shown[] = [];
  for (const account of accounts) {
    for (const request of pending.get(account.deviceId) ?? []) {
      if (seen.has(request.id) || Date.parse(request.expires_at) <= Date.now()) continue;
      seen.add(request.id);
      shown.push({ account, request });
    }
  }
  return shown;
}

function secondsLeft(request: PendingRequest): number {
  return Math.max(0, Math.ceil((Date.parse(request.expires_at) - Date.now()) / 1000));
}

function renderRequests(): void {
  const list = byId('request-list');
  const shown = shownRequests();
  const ids = new Set(shown.map((s) => s.request.id));
  for (const [id, card] of cards) {
    if (!ids.has(id) && card.dataset['answering'] !== 'true') {
      card.remove();
      cards.delete(id);
    }
  }
  for (const item of shown) {
    if (!cards.has(item.request.id)) {
      const card = requestCard(item);
      cards.set(item.request.id, card);
      list.prepend(card);
      card.querySelector<HTMLInputElement>('input')?.focus();
    }
  }
  byId('no-requests').hidden = cards.size > 0;
  document.title = cards.size > 0 ? `(${cards.size}) Countersign Authenticator` : 'Countersign Authenticator';
}

function requestCard({ account, request }: Shown): HTMLElement {
  const status = h('p', { class: 'status', role: 'status' });
  const number = request.number_required
    ? h('input', { name: 'number', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{2,4}', maxlength: '4', required: true, 'aria-describedby': `hint-${request.id}` })
    : null;
  const pin = request.pin_required ? h('input', { name: 'pin', type: 'password', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{4,16}', maxlength: '16', required: true }) : null;
  const from = [request.ip, request.location].filter((part): part is string => typeof part === 'string' && part !== '').join(' · ');
  const buttons: HTMLButtonElement[] = [];
  const send = async (decision: PushDecision): Promise<void> => {
    const typed = number?.value.trim() ?? '';
    if (decision === 'approve' && number !== null && !/^\d{2,4}$/.test(typed)) {
      status.textContent = 'Type the number shown on the sign-in screen, then approve.';
      number.focus();
      return;
    }
    if (decision === 'approve' && pin !== null && !/^\d{4,16}$/.test(pin.value)) {
      status.textContent = 'Type your PIN (4 to 16 digits), then approve.';
      pin.focus();
      return;
    }
    card.dataset['answering'] = 'true';
    for (const button of buttons) button.disabled = true;
    status.textContent = 'Sending…';
    try {
      const result = await answer(account, request.id, decision, decision === 'approve' ? typed : '', decision === 'approve' && pin !== null ? pin.value : undefined);
      toast(outcome(decision, result.status));
      card.remove();
      cards.delete(request.id);
      const left = (pending.get(account.deviceId) ?? []).filter((r) => r.id !== request.id);
      pending.set(account.deviceId, left);
      renderRequests();
    } catch (error) {
      delete card.dataset['answering'];
      for (const button of buttons) button.disabled = false;
      if (error instanceof ApiError && (error.status === 409 || error.status === 404)) {
        toast('That request was already answered or has expired.');
        card.remove();
        cards.delete(request.id);
        renderRequests();
        return;
      }
      status.textContent = error instanceof Error ? error.message : 'The answer could not be sent.';
    }
  };
  const add = (button: HTMLButtonElement): HTMLButtonElement => {
    buttons.push(button);
    return button;
  };
  const fraudRow = h(
    'div',
    { class: 'confirm', hidden: true },
    h('span', {}, 'Deny this sign-in and tell your administrator it was not you?'),
    add(h('button', { type: 'button', class: 'danger', onclick: () => void send('fraud') }, 'Report fraud')),
    add(h('button', { type: 'button', onclick: () => (fraudRow.hidden = true) }, 'Back')),
  );
  const form = h(
    'form',
    {
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        void send('approve');
      },
    },
    number === null ? null : h('label', {}, 'Number shown on the sign-in screen', number),
    number === null ? null : h('small', { id: `hint-${request.id}` }, 'Only approve if you are signing in now and the number matches.'),
    pin === null ? null : h('label', {}, 'Your PIN', pin),
    h(
      'div',
      { class: 'actions' },
      add(h('button', { type: 'submit', class: 'approve' }, 'Approve')),
      add(h('button', { type: 'button', class: 'deny', onclick: () => void send('deny') }, 'Deny')),
      add(h('button', { type: 'button', class: 'link-button', onclick: () => (fraudRow.hidden = false) }, 'It wasn’t me…')),
    ),
    fraudRow,
  );
  const card = h(
    'article',
    { class: 'request', 'data-request': request.id },
    h('h3', {}, request.event?.title ?? `Sign in to ${request.application ?? 'an application'}?`),
    request.event?.detail === undefined || request.event.detail === null ? null : h('p', { class: 'event-detail' }, request.event.detail),
    h(
      'dl',
      {},
      h('dt', {}, 'Account'),
      h('dd', {}, accountLabel(account)),
      request.application === null ? null : h('dt', {}, 'Application'),
      request.application === null ? null : h('dd', {}, request.application),
      from === '' ? null : h('dt', {}, 'From'),
      from === '' ? null : h('dd', {}, from),
      h('dt', {}, 'Expires in'),
      h('dd', { 'data-expires': request.id, 'data-at': request.expires_at }, `${secondsLeft(request)} s`),
    ),
    form,
    status,
  );
  return card;
}

function outcome(decision: PushDecision, status: string): string {
  if (decision === 'fraud') return status === 'fraud' ? 'Reported as fraud: the sign-in was denied and your administrator was told.' : 'The sign-in was denied.';
  if (decision === 'deny') return 'The sign-in was denied.';
  return status === 'approved' ? 'Approved. Go back to the sign-in.' : 'The sign-in was denied: the number or PIN did not match.';
}

// ---------------------------------------------------------------- activation

function activationCode(): string | null {
  const code = new URLSearchParams(location.hash.replace(/^#/, '')).get('activate');
  return code !== null && /^[A-Za-z0-9_-]{16,64}$/.test(code) ? code : null;
}

function defaultDeviceName(): string {
  const agent = navigator.userAgent;
  const browser = /Edg\//.test(agent) ? 'Edge' : /Firefox\//.test(agent) ? 'Firefox' : /Chrom(e|ium)\//.test(agent) ? 'Chrome' : /Safari\//.test(agent) ? 'Safari' : 'Browser';
  const system = /Android/.test(agent) ? 'Android' : /iPhone|iPad/.test(agent) ? 'iOS' : /Windows/.test(agent) ? 'Windows' : /Mac OS X/.test(agent) ? 'macOS' : /Linux/.test(agent) ? 'Linux' : 'this device';
  return `${browser} on ${system}`;
}

function clearActivationLink(): void {
  history.replaceState(null, '', location.pathname + location.search);
}

async function showActivation(): Promise<void> {
  const code = activationCode();
  const section = byId('activation');
  if (code === null) {
    section.hidden = location.hash.includes('activate=') ? false : true;
    if (!section.hidden) {
      byId('activate-form').hidden = true;
      byId('activation-status').textContent = 'This activation link is incomplete. Open the whole link or scan the QR code again.';
    }
    return;
  }
  section.hidden = false;
  const name = byId<HTMLInputElement>('device-name');
  name.value = defaultDeviceName();
  const key = 'PushManager' in window && 'serviceWorker' in navigator && 'Notification' in window ? await webPushKey() : null;
  byId('webpush-row').hidden = key === null;
  const form = byId<HTMLFormElement>('activate-form');
  const status = byId('activation-status');
  byId('activate-cancel').addEventListener('click', () => {
    clearActivationLink();
    section.hidden = true;
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void (async () => {
      const button = form.querySelector<HTMLButtonElement>('button[type=submit]');
      if (button !== null) button.disabled = true;
      status.textContent = 'Activating…';
      try {
        const { privateKey, publicKey } = await newKeyPair();
        let channel: 'poll' | 'webpush' = 'poll';
        let target: string | undefined;
        if (key !== null && byId<HTMLInputElement>('webpush').checked) {
          const subscription = await subscribeWebPush(key);
          if (subscription === null) status.textContent = 'Notifications are off for this site: requests will show while the app is open. Activating…';
          else [channel, target] = ['webpush', subscription];
        }
        const activated = await activate({ code, publicKey, name: name.value.trim() || defaultDeviceName(), channel, ...(target === undefined ? {} : { target }) });
        const account: Account = {
          deviceId: activated.device_id,
          tenant: activated.tenant,
          username: activated.username,
          deviceName: name.value.trim() || defaultDeviceName(),
          privateKey,
          totp: activated.totp === undefined ? null : { secret: activated.totp.secret, algorithm: activated.totp.algorithm, digits: activated.totp.digits, period: activated.totp.period },
          channel,
          addedAt: Date.now(),
        };
        await saveAccount(account);
        accounts.push(account);
        renderAccounts();
        watch(account);
        clearActivationLink();
        section.hidden = true;
        toast(`Activated for ${accountLabel(account)}. Sign-in requests will appear here.`);
      } catch (error) {
        if (button !== null) button.disabled = false;
        status.textContent = error instanceof ApiError ? `Activation failed: ${error.message}` : `Activation failed: ${error instanceof Error ? error.message : String(error)}`;
      }
    })();
  });
}

function vapidKeyBytes(key: string): Uint8Array<ArrayBuffer> {
  const text = atob(key.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (key.length % 4)) % 4));
  const bytes = new Uint8Array(new ArrayBuffer(text.length));
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

/** A Web Push subscription (as JSON) for this browser, or null when the user or the browser says no. */
async function subscribeWebPush(key: string): Promise<string | null> {
  try {
    if ((await Notification.requestPermission()) !== 'granted') return null;
    const registration = await navigator.serviceWorker.ready;
    const subscription = (await registration.pushManager.getSubscription()) ?? (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: vapidKeyBytes(key) }));
    return JSON.stringify(subscription.toJSON());
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- every second

function tick(): void {
  for (const account of accounts) {
    if (account.totp === null) continue;
    const shown = currentCode(account.totp);
    const code = document.querySelector<HTMLOutputElement>(`[data-code="${CSS.escape(account.deviceId)}"]`);
    if (code !== null) code.value = `${shown.code.slice(0, Math.ceil(shown.code.length / 2))} ${shown.code.slice(Math.ceil(shown.code.length / 2))}`;
    const bar = document.querySelector<HTMLProgressElement>(`[data-countdown="${CSS.escape(account.deviceId)}"]`);
    if (bar !== null) bar.value = shown.remaining;
    const remaining = document.querySelector<HTMLElement>(`[data-remaining="${CSS.escape(account.deviceId)}"]`);
    if (remaining !== null) remaining.textContent = `${shown.remaining} s`;
  }
  let expired = false;
  for (const element of document.querySelectorAll<HTMLElement>('[data-expires]')) {
    const left = Math.max(0, Math.ceil((Date.parse(element.dataset['at'] ?? '') - Date.now()) / 1000));
    element.textContent = `${left} s`;
    if (left === 0) expired = true;
  }
  if (expired) renderRequests();
}

// ---------------------------------------------------------------- the rest

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function toast(message: string): void {
  const element = byId('toast');
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (element.hidden = true), 8000);
}

async function boot(): Promise<void> {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js', { scope: './' }).catch(() => {
      // Without a service worker the app still works while online; it just cannot be installed.
    });
  }
  accounts.push(...(await listAccounts()));
  renderAccounts();
  for (const account of accounts) watch(account);
  await showActivation();
  setInterval(tick, 1000);
}

boot().catch((error: unknown) => {
  byId('fatal').hidden = false;
  byId('fatal').textContent = `The authenticator could not start: ${error instanceof Error ? error.message : String(error)}. This browser must allow IndexedDB and WebCrypto (a private window may not).`;
});
