/**
 * Registration from an enrollment link (`<server>/authenticator/#enroll=TOKEN`, made by an
 * administrator: src/flows/enrollment.ts). The token goes to the self-service API of this page's
 * own server (`/v1/enrollment`, as bearer) and nowhere else; it is in the fragment, which the
 * browser never sends, and is taken out of the address bar once read. The page names the account,
 * the methods the link allows and what is registered; "Use this browser as your authenticator"
 * asks for a push activation and activates it in place (the activation code path of
 * activation.ts); "Done" completes the registration. A used, revoked or expired link shows the
 * server's own message.
 */
import { activateInPlace } from './activation.js';
import { ApiError, apiUrl, refusal } from './device-api.js';
import { byId, h } from './dom.js';

const TOKEN = /^cse_[A-Za-z0-9_-]{20,96}$/;

interface Registered {
  id: string;
  type: string;
  label: string;
}

interface EnrollmentInfo {
  username: string;
  display_name: string | null;
  tenant: string;
  mfa_state: string;
  expires_at: string;
  methods: string[];
  registered: Registered[];
}

const METHOD_NAMES: Record<string, string> = {
  totp: 'an authenticator app (codes)',
  push: 'this authenticator (approve sign-ins)',
  sms: 'a mobile number (texts)',
  voice: 'a phone number (calls)',
};

/** The token being shown, if any (kept in memory only). */
let token: string | null = null;

async function enrollmentCall<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  if (token === null) throw new ApiError(0, 'NO_LINK', 'No enrollment link is open.');
  const headers: Record<string, string> = { accept: 'application/json', authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(apiUrl(path), { method, headers, body: body === undefined ? null : JSON.stringify(body), cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch {
    throw new ApiError(0, 'OFFLINE', 'The Countersign server cannot be reached. Check your connection and try again.');
  }
  if (!response.ok) throw await refusal(response);
  return (await response.json()) as T;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The `enroll` parameter of the address's fragment, or null. */
function enrollParameter(): string | null {
  return new URLSearchParams(location.hash.replace(/^#/, '')).get('enroll');
}

function clearEnrollLink(): void {
  if (location.hash.includes('enroll=')) history.replaceState(null, '', location.pathname);
}

/** Shows who the link is for, what it allows and what is registered already. */
function render(info: EnrollmentInfo): void {
  const name = info.display_name === null ? info.username : `${info.display_name} (${info.username})`;
  byId('enrollment-account').textContent = `Register for ${name} · ${info.tenant}`;
  byId('enrollment-methods').replaceChildren(...info.methods.map((m) => h('li', {}, METHOD_NAMES[m] ?? m)));
  byId('enrollment-registered').replaceChildren(...info.registered.map((m) => h('li', { 'data-type': m.type }, m.label)));
  byId('enrollment-none').hidden = info.registered.length > 0;
  byId('enroll-push').hidden = !info.methods.includes('push');
  byId('enrollment-other').hidden = !info.methods.some((m) => m !== 'push');
  byId('enrollment-actions').hidden = false;
  byId<HTMLButtonElement>('enroll-done').disabled = info.registered.length === 0;
}

/** The link is no longer usable (or never was): the server's message, nothing to press. */
function closed(message: string): void {
  token = null;
  byId('enrollment-actions').hidden = true;
  byId('enrollment-status').textContent = message;
}

async function refresh(): Promise<void> {
  render(await enrollmentCall<EnrollmentInfo>('GET', '/v1/enrollment'));
}

async function show(found: string): Promise<void> {
  token = found;
  clearEnrollLink();
  byId('enrollment').hidden = false;
  byId('enrollment-actions').hidden = true;
  byId('enrollment-account').textContent = '';
  const status = byId('enrollment-status');
  status.textContent = 'Checking the link…';
  try {
    await refresh();
    status.textContent = '';
  } catch (error) {
    closed(messageOf(error));
  }
}

async function usePush(): Promise<void> {
  const button = byId<HTMLButtonElement>('enroll-push');
  const status = byId('enrollment-status');
  button.disabled = true;
  status.textContent = 'Getting an activation for this browser…';
  try {
    const { activation_url } = await enrollmentCall<{ activation_url: string }>('POST', '/v1/enrollment/push', {});
    const code = new URLSearchParams(new URL(activation_url).hash.replace(/^#/, '')).get('activate') ?? '';
    status.textContent = 'Activating this browser…';
    const activated = await activateInPlace(code);
    status.textContent = activated ? 'This browser is now your authenticator. Press “Done” when you have registered everything you want.' : 'This browser could not be activated: see below.';
    await refresh();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) closed(error.message);
    else status.textContent = `Could not register this browser: ${messageOf(error)}`;
  } finally {
    button.disabled = false;
  }
}

async function done(): Promise<void> {
  const button = byId<HTMLButtonElement>('enroll-done');
  const status = byId('enrollment-status');
  button.disabled = true;
  try {
    const result = await enrollmentCall<{ completed: boolean; registered: Registered[] }>('POST', '/v1/enrollment/complete');
    byId('enrollment-registered').replaceChildren(...result.registered.map((m) => h('li', { 'data-type': m.type }, m.label)));
    closed('Registration is complete. You can close this page; sign-ins now ask for your second factor.');
  } catch (error) {
    button.disabled = false;
    if (error instanceof ApiError && error.status === 401) closed(error.message);
    else status.textContent = messageOf(error);
  }
}

function showFromAddress(): void {
  const found = enrollParameter();
  if (found === null) return;
  if (TOKEN.test(found)) {
    void show(found);
    return;
  }
  clearEnrollLink();
  byId('enrollment').hidden = false;
  closed('This enrollment link is incomplete. Open the whole link your administrator sent.');
}

/** Wires the enrollment section and reads an `#enroll=` link from the address bar. */
export function initEnrollment(): void {
  byId('enroll-push').addEventListener('click', () => void usePush());
  byId('enroll-done').addEventListener('click', () => void done());
  window.addEventListener('hashchange', showFromAddress);
  showFromAddress();
}
