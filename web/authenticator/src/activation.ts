/**
 * Activation: from a link opened in the browser (`<server>/authenticator#activate=CODE`, also
 * when pasted into the address bar of an open tab), or pasted under "Add an account" — the only
 * way in for an app added to an iPhone's home screen, which has its own storage and no address
 * bar. Activating makes a new non-extractable key pair, optionally subscribes to Web Push, and
 * registers the public key with the server.
 */
import { accountLabel, saveAccount, type Account } from './accounts.js';
import { activate, ApiError, newKeyPair, previewActivation, webPushKey, type Activated } from './device-api.js';
import { byId } from './dom.js';
import { toast } from './toast.js';

const CODE = /^[A-Za-z0-9_-]{16,64}$/;

/** The code of the activation being shown, if any. */
let activeCode: string | null = null;
let pushKey: Promise<string | null> | undefined;

function serverPushKey(): Promise<string | null> {
  pushKey ??= 'PushManager' in window && 'serviceWorker' in navigator && 'Notification' in window ? webPushKey() : Promise.resolve(null);
  return pushKey;
}

function defaultDeviceName(): string {
  const agent = navigator.userAgent;
  const browser = /Edg\//.test(agent) ? 'Edge' : /Firefox\//.test(agent) ? 'Firefox' : /Chrom(e|ium)\//.test(agent) ? 'Chrome' : /Safari\//.test(agent) ? 'Safari' : 'Browser';
  const system = /Android/.test(agent) ? 'Android' : /iPhone|iPad/.test(agent) ? 'iOS' : /Windows/.test(agent) ? 'Windows' : /Mac OS X/.test(agent) ? 'macOS' : /Linux/.test(agent) ? 'Linux' : 'this device';
  return `${browser} on ${system}`;
}

/** The `activate` parameter of a link's fragment or, failing that, its query; null when it has none. */
function activateParameter(url: URL): string | null {
  return new URLSearchParams(url.hash.replace(/^#/, '')).get('activate') ?? url.searchParams.get('activate');
}

/** This app's own address, as a path ending in `/` (`/authenticator/`). */
function appPath(url: URL): string {
  const path = url.pathname.replace(/index\.html$/, '');
  return path.endsWith('/') ? path : `${path}/`;
}

/** The code of a pasted activation link, or why it cannot be used here. */
export function codeFromLink(text: string): { code: string } | { problem: string } {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { problem: 'That is not a link. Copy the whole activation link (it starts with https://) and paste it here.' };
  }
  const code = activateParameter(url);
  if (code === null) return { problem: 'That link is not an activation link: it has no activation code (…#activate=…).' };
  const here = new URL('./', location.href);
  if (url.origin !== here.origin || appPath(url) !== here.pathname) {
    return { problem: `That link is for another Countersign server (${url.origin}${appPath(url)}), not this one (${here.origin}${here.pathname}). Open it on the device, or add the account in that server's authenticator app.` };
  }
  if (!CODE.test(code)) return { problem: 'That activation link is incomplete. Copy the whole link or scan the QR code again.' };
  return { code };
}

function clearActivationLink(): void {
  if (location.hash.includes('activate=') || location.search.includes('activate=')) history.replaceState(null, '', location.pathname);
}

function hideActivation(): void {
  activeCode = null;
  byId('activation').hidden = true;
}

/**
 * Shows the activation form for a code, naming the account it is for; a link that was already
 * used or has expired says so at once instead of offering a form that would fail.
 */
async function showActivation(code: string): Promise<void> {
  activeCode = code;
  const section = byId('activation');
  const form = byId('activate-form');
  const status = byId('activation-status');
  const account = byId('activation-account');
  section.hidden = false;
  form.hidden = true;
  account.textContent = '';
  status.textContent = 'Checking the link…';
  let preview: Awaited<ReturnType<typeof previewActivation>> | null = null;
  try {
    preview = await previewActivation(code);
  } catch (error) {
    if (activeCode !== code) return;
    if (error instanceof ApiError && error.status === 404) {
      status.textContent = 'This activation link was already used or has expired. Ask your administrator (or the sign-in portal) for a new one.';
      return;
    }
    // Offline or a server that cannot say: offer the form; activating will tell.
  }
  if (activeCode !== code) return;
  status.textContent = '';
  if (preview !== null) account.textContent = `For ${preview.username} · ${preview.tenant}${preview.with_totp ? ', with offline codes' : ''}.`;
  form.hidden = false;
  const button = form.querySelector<HTMLButtonElement>('button[type=submit]');
  if (button !== null) button.disabled = false;
  byId<HTMLInputElement>('device-name').value = defaultDeviceName();
  byId('webpush-row').hidden = (await serverPushKey()) === null;
}

/** What the address bar says: an activation link shows the form; a broken one says so. */
function showFromAddress(): void {
  const code = activateParameter(new URL(location.href));
  if (code === null) return;
  if (CODE.test(code)) {
    void showActivation(code);
    return;
  }
  activeCode = null;
  byId('activation').hidden = false;
  byId('activate-form').hidden = true;
  byId('activation-account').textContent = '';
  byId('activation-status').textContent = 'This activation link is incomplete. Open the whole link or scan the QR code again.';
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

/** A 400 about the Web Push subscription itself: the server would take this device without it. */
function pushRefused(error: unknown): boolean {
  return error instanceof ApiError && error.status === 400 && /^(target|channel)\b/.test(error.message);
}

async function activateShown(code: string): Promise<boolean> {
  const form = byId<HTMLFormElement>('activate-form');
  const status = byId('activation-status');
  const button = form.querySelector<HTMLButtonElement>('button[type=submit]');
  const name = byId<HTMLInputElement>('device-name').value.trim() || defaultDeviceName();
  if (button !== null) button.disabled = true;
  status.textContent = 'Activating…';
  try {
    const { privateKey, publicKey } = await newKeyPair();
    const key = await serverPushKey();
    let channel: 'poll' | 'webpush' = 'poll';
    let target: string | undefined;
    let notice = '';
    if (key !== null && byId<HTMLInputElement>('webpush').checked) {
      const subscription = await subscribeWebPush(key);
      if (subscription === null) status.textContent = 'Notifications are off for this site: requests will show while the app is open. Activating…';
      else [channel, target] = ['webpush', subscription];
    }
    let activated: Activated;
    try {
      activated = await activate({ code, publicKey, name, channel, ...(target === undefined ? {} : { target }) });
    } catch (error) {
      if (channel !== 'webpush' || !pushRefused(error)) throw error;
      // The server will not send to this browser's push service: activate without notifications.
      channel = 'poll';
      notice = ' The server did not accept this browser for notifications, so they are off: requests show while the app is open.';
      activated = await activate({ code, publicKey, name, channel });
    }
    const account: Account = {
      deviceId: activated.device_id,
      tenant: activated.tenant,
      username: activated.username,
      deviceName: name,
      privateKey,
      totp: activated.totp === undefined ? null : { secret: activated.totp.secret, algorithm: activated.totp.algorithm, digits: activated.totp.digits, period: activated.totp.period },
      channel,
      addedAt: Date.now(),
    };
    await saveAccount(account);
    if (activeCode === code) {
      clearActivationLink();
      hideActivation();
    }
    status.textContent = '';
    if (button !== null) button.disabled = false;
    onActivated(account);
    toast(`Activated for ${accountLabel(account)}. Sign-in requests will appear here.${notice}`);
    return true;
  } catch (error) {
    if (button !== null) button.disabled = false;
    status.textContent = `Activation failed: ${error instanceof Error ? error.message : String(error)}`;
    return false;
  }
}

/**
 * Activates this browser with a code at once, through the same path as the form (for an
 * enrollment link's "Use this browser as your authenticator": enrollment.ts). False when the
 * code is refused or activation failed; the activation section then says why.
 */
export async function activateInPlace(code: string): Promise<boolean> {
  if (!CODE.test(code)) return false;
  await showActivation(code);
  if (activeCode !== code || byId('activate-form').hidden) return false;
  return activateShown(code);
}

let onActivated: (account: Account) => void = () => undefined;

/** Wires the activation form, the "Add an account" paste box and the address bar; `activated` runs for each new account. */
export function initActivation(activated: (account: Account) => void): void {
  onActivated = activated;
  byId<HTMLFormElement>('activate-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (activeCode !== null) void activateShown(activeCode);
  });
  byId('activate-cancel').addEventListener('click', () => {
    clearActivationLink();
    hideActivation();
  });
  const paste = byId<HTMLFormElement>('paste-form');
  const pasteStatus = byId('paste-status');
  paste.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = byId<HTMLInputElement>('paste-link');
    const parsed = codeFromLink(input.value);
    if ('problem' in parsed) {
      pasteStatus.textContent = parsed.problem;
      input.focus();
      return;
    }
    input.value = '';
    pasteStatus.textContent = '';
    byId<HTMLDetailsElement>('add-account').open = false;
    void showActivation(parsed.code).then(() => {
      byId('activation').scrollIntoView({ block: 'start' });
      byId<HTMLInputElement>('device-name').focus();
    });
  });
  // A second link pasted into the address bar of the open app changes only the fragment.
  window.addEventListener('hashchange', showFromAddress);
  showFromAddress();
}
