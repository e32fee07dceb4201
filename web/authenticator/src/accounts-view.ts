/**
 * The list of accounts this browser holds: who and which tenant, how requests reach it (the
 * live link's state), its offline code with a countdown when it has one, and removal.
 */
import { accountLabel, type Account } from './accounts.js';
import { currentCode } from './codes.js';
import { byId, h } from './dom.js';
import type { LinkState } from './live-stream.js';

const links = new Map<string, { state: LinkState; detail?: string | undefined }>();

function linkText(deviceId: string): string {
  const link = links.get(deviceId);
  switch (link?.state) {
    case 'live':
      return 'Receiving requests';
    case 'polling':
      return link.detail === undefined ? 'Checking for requests every few seconds' : `Checking every few seconds (${link.detail})`;
    case 'refused':
      return link.detail ?? 'The server refused this authenticator.';
    default:
      return 'Connecting…';
  }
}

/** Draws the list; `onRemove` runs when the user confirms removing an account. */
export function renderAccounts(accounts: readonly Account[], onRemove: (account: Account) => void): void {
  const list = byId<HTMLUListElement>('account-list');
  byId('no-accounts').hidden = accounts.length > 0;
  list.replaceChildren(
    ...accounts.map((account) => {
      const confirmRow = h(
        'div',
        { class: 'confirm', hidden: true },
        h('span', {}, 'Remove this account from this browser? Ask your administrator to remove the device on the server too.'),
        h('button', { type: 'button', class: 'danger', onclick: () => onRemove(account) }, 'Remove'),
        h('button', { type: 'button', onclick: () => (confirmRow.hidden = true) }, 'Keep'),
      );
      return h(
        'li',
        { class: 'account', 'data-device': account.deviceId },
        h('div', { class: 'who' }, h('strong', {}, account.username), h('span', { class: 'tenant' }, account.tenant)),
        h('div', { class: 'link', 'data-link': account.deviceId, 'data-state': links.get(account.deviceId)?.state ?? 'connecting' }, linkText(account.deviceId)),
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
  tickCodes(accounts);
}

/** The account's link changed state (live-stream.ts). */
export function setLink(deviceId: string, state: LinkState, detail?: string): void {
  links.set(deviceId, { state, detail });
  const element = document.querySelector<HTMLElement>(`[data-link="${CSS.escape(deviceId)}"]`);
  if (element !== null) {
    element.textContent = linkText(deviceId);
    element.dataset['state'] = state;
  }
}

export function forgetLink(deviceId: string): void {
  links.delete(deviceId);
}

/** Every second: each account's current code and how long it has left. */
export function tickCodes(accounts: readonly Account[]): void {
  for (const account of accounts) {
    if (account.totp === null) continue;
    const shown = currentCode(account.totp);
    const half = Math.ceil(shown.code.length / 2);
    const code = document.querySelector<HTMLOutputElement>(`[data-code="${CSS.escape(account.deviceId)}"]`);
    if (code !== null) code.value = `${shown.code.slice(0, half)} ${shown.code.slice(half)}`;
    const bar = document.querySelector<HTMLProgressElement>(`[data-countdown="${CSS.escape(account.deviceId)}"]`);
    if (bar !== null) bar.value = shown.remaining;
    const remaining = document.querySelector<HTMLElement>(`[data-remaining="${CSS.escape(account.deviceId)}"]`);
    if (remaining !== null) remaining.textContent = `${shown.remaining} s`;
  }
}
