/**
 * The sign-in requests waiting for an answer, one card each, across every account: number
 * matching, PIN, approve, deny and fraud reports. Each account's watcher hands in its list;
 * a request answered here (or found already answered) is remembered as settled until it
 * expires, so a late stream event or another account of the same user cannot bring it back.
 */
import type { PushDecision } from '../../../src/core/push-signature.js';
import { accountLabel, type Account } from './accounts.js';
import { answer, ApiError, isSignatureRefused, plainRefusal, type AnswerResult, type PendingRequest } from './device-api.js';
import { byId, h } from './dom.js';
import { serverNow } from './server-clock.js';
import { toast } from './toast.js';

interface Shown {
  account: Account;
  request: PendingRequest;
}

/** The accounts whose requests are shown, in order (main.ts owns the list). */
let accountsOf: () => readonly Account[] = () => [];
/** Each account's pending requests, as its watcher last saw them. */
const pending = new Map<string, PendingRequest[]>();
/** Request ids answered or found closed, with when they expire (server time, ms). */
const settled = new Map<string, number>();
const cards = new Map<string, HTMLElement>();

export function initRequests(accounts: () => readonly Account[]): void {
  accountsOf = accounts;
}

/** An account's watcher saw these requests. */
export function setPending(deviceId: string, requests: PendingRequest[]): void {
  pending.set(deviceId, requests);
  renderRequests();
}

/** The account is gone (removed, or refused by the server): its requests go with it. */
export function dropAccount(deviceId: string): void {
  pending.delete(deviceId);
  renderRequests();
}

function settle(request: PendingRequest): void {
  const expires = Date.parse(request.expires_at);
  settled.set(request.id, Number.isFinite(expires) ? expires : serverNow() + 10 * 60_000);
}

function shownRequests(): Shown[] {
  const now = serverNow();
  const seen = new Set<string>();
  const shown: Shown[] = [];
  for (const account of accountsOf()) {
    for (const request of pending.get(account.deviceId) ?? []) {
      if (seen.has(request.id) || settled.has(request.id) || Date.parse(request.expires_at) <= now) continue;
      seen.add(request.id);
      shown.push({ account, request });
    }
  }
  return shown;
}

function secondsLeft(expiresAt: string): number {
  return Math.max(0, Math.ceil((Date.parse(expiresAt) - serverNow()) / 1000));
}

export function renderRequests(): void {
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
    if (cards.has(item.request.id)) continue;
    const card = requestCard(item);
    cards.set(item.request.id, card);
    list.prepend(card);
    // Only take the focus when nobody holds it: a new card must not pull it from what the user is typing in.
    const active = document.activeElement;
    if (active === null || active === document.body) card.querySelector<HTMLInputElement>('input')?.focus();
  }
  byId('no-requests').hidden = cards.size > 0;
  document.title = cards.size > 0 ? `(${cards.size}) Countersign Authenticator` : 'Countersign Authenticator';
}

/** Every second: the countdowns, expired cards, and settled ids past their expiry. */
export function tickRequests(): void {
  const now = serverNow();
  for (const [id, expires] of settled) if (expires < now) settled.delete(id);
  let expired = false;
  for (const element of document.querySelectorAll<HTMLElement>('[data-expires]')) {
    const left = secondsLeft(element.dataset['at'] ?? '');
    element.textContent = `${left} s`;
    if (left === 0) expired = true;
  }
  if (expired) renderRequests();
}

function outcome(decision: PushDecision, { status, reason }: AnswerResult): string {
  if (decision === 'fraud') return status === 'fraud' ? 'Reported as fraud: the sign-in was denied and your administrator was told.' : 'The sign-in was denied.';
  if (decision === 'deny') return 'The sign-in was denied.';
  if (status === 'approved') return 'Approved. Go back to the sign-in.';
  if (reason === 'wrong_number') return 'The sign-in was denied: the number you typed was not the one on the sign-in screen.';
  if (reason === 'wrong_pin') return 'The sign-in was denied: the PIN was not right.';
  return 'The sign-in was denied.';
}

function requestCard({ account, request }: Shown): HTMLElement {
  const status = h('p', { class: 'status', role: 'status' });
  const number = request.number_required
    ? h('input', { name: 'number', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{2,4}', maxlength: '4', required: true, 'aria-describedby': `hint-${request.id}` })
    : null;
  const pin = request.pin_required ? h('input', { name: 'pin', type: 'password', inputmode: 'numeric', autocomplete: 'off', pattern: '[0-9]{4,16}', maxlength: '16', required: true }) : null;
  const from = [request.ip, request.location].filter((part): part is string => typeof part === 'string' && part !== '').join(' · ');
  const buttons: HTMLButtonElement[] = [];
  const finish = (message: string): void => {
    settle(request);
    toast(message);
    card.remove();
    cards.delete(request.id);
    renderRequests();
  };
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
      finish(outcome(decision, result));
    } catch (error) {
      delete card.dataset['answering'];
      for (const button of buttons) button.disabled = false;
      if (error instanceof ApiError && (error.status === 409 || error.status === 404)) {
        finish('That request was already answered or has expired.');
        return;
      }
      status.textContent = isSignatureRefused(error) ? plainRefusal(error) : error instanceof Error ? error.message : 'The answer could not be sent.';
    }
  };
  const add = (button: HTMLButtonElement): HTMLButtonElement => {
    buttons.push(button);
    return button;
  };
  const fraudRow = h(
    'div',
    { class: 'confirm', hidden: true },
    h('span', {}, 'Deny this sign-in and tell your administrator it was not you? For your protection your account may be blocked until your administrator unblocks it.'),
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
      h('dd', { 'data-expires': request.id, 'data-at': request.expires_at }, `${secondsLeft(request.expires_at)} s`),
    ),
    form,
    status,
  );
  return card;
}
