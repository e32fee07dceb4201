/**
 * The accounts this browser holds, kept in IndexedDB (through `idb`) so they survive a reload.
 * The private key is a non-extractable WebCrypto CryptoKey: IndexedDB stores the key object
 * itself, and no script (ours included) can read its bytes. The TOTP secret, when the
 * activation carried one, is stored as the authenticator apps store theirs.
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';

export interface TotpSecret {
  secret: string;
  algorithm: string;
  digits: number;
  period: number;
}

export interface Account {
  deviceId: string;
  tenant: string;
  username: string;
  /** The device name given at activation, as the server lists it. */
  deviceName: string;
  privateKey: CryptoKey;
  totp: TotpSecret | null;
  /** How the server notifies this device: `webpush` while closed, or only the live stream (`poll`). */
  channel: 'poll' | 'webpush';
  addedAt: number;
}

interface Schema extends DBSchema {
  accounts: { key: string; value: Account };
}

let opened: Promise<IDBPDatabase<Schema>> | undefined;

function db(): Promise<IDBPDatabase<Schema>> {
  opened ??= openDB<Schema>('countersign-authenticator', 1, {
    upgrade(database) {
      database.createObjectStore('accounts', { keyPath: 'deviceId' });
    },
  });
  return opened;
}

export async function listAccounts(): Promise<Account[]> {
  const all = await (await db()).getAll('accounts');
  return all.sort((a, b) => a.addedAt - b.addedAt);
}

export async function saveAccount(account: Account): Promise<void> {
  await (await db()).put('accounts', account);
}

export async function removeAccount(deviceId: string): Promise<void> {
  await (await db()).delete('accounts', deviceId);
}

/** How an account is named on screen: `user · tenant`. */
export function accountLabel(account: Pick<Account, 'username' | 'tenant'>): string {
  return `${account.username} · ${account.tenant}`;
}
