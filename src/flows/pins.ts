import { hash, verify } from '@node-rs/argon2';
import { invalidInput, notFound } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';
import { tenantSettings } from './tenants.js';

/**
 * The PIN asked on calls in PIN mode (Azure MFA Server). At least 4 digits, with no run of three
 * repeated (111) or sequential (123, 321) digits; stored only as an argon2id PHC string with
 * OWASP's minimum parameters (SECURITY.md PWD-01: m = 19 MiB, t = 2, p = 1), so the parameters
 * can be raised later.
 */
const ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function checkPinRules(pin: unknown): string {
  if (typeof pin !== 'string' || !/^\d{4,16}$/.test(pin)) throw invalidInput('pin', 'must be 4 to 16 digits');
  for (let i = 2; i < pin.length; i++) {
    const [a, b, c] = [Number(pin[i - 2]), Number(pin[i - 1]), Number(pin[i])];
    if (a === b && b === c) throw invalidInput('pin', 'must not hold three repeated digits in a row (such as 111)');
    if ((b - a === 1 && c - b === 1) || (a - b === 1 && b - c === 1)) throw invalidInput('pin', 'must not hold three sequential digits in a row (such as 123 or 321)');
  }
  return pin;
}

export async function setPin(services: Services, principal: Principal, tenant: TenantRow, userId: string, pin: unknown): Promise<void> {
  const value = checkPinRules(pin);
  // On a call, the fraud code then # reports fraud: a PIN equal to it could never sign in.
  if (value === tenantSettings(tenant).fraud_code) throw invalidInput('pin', 'must not be the tenant’s fraud code');
  const pinHash = await hash(value, ARGON2);
  const result = await services.db.updateTable('users').set({ pin_hash: pinHash, updated_at: services.clock().getTime() }).where('id', '=', userId).where('tenant_id', '=', tenant.id).executeTakeFirst();
  if (result.numUpdatedRows === 0n) throw notFound(`user ${userId}`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.pin_set', target: userId });
}

export async function clearPin(services: Services, principal: Principal, tenant: TenantRow, userId: string): Promise<void> {
  const result = await services.db.updateTable('users').set({ pin_hash: null, updated_at: services.clock().getTime() }).where('id', '=', userId).where('tenant_id', '=', tenant.id).executeTakeFirst();
  if (result.numUpdatedRows === 0n) throw notFound(`user ${userId}`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'user.pin_cleared', target: userId });
}

/** Whether `pin` is the user's PIN; false when none is set. */
export async function verifyPin(services: Services, userId: string, pin: string): Promise<boolean> {
  const row = await services.db.selectFrom('users').select('pin_hash').where('id', '=', userId).executeTakeFirst();
  if (row?.pin_hash === null || row?.pin_hash === undefined) return false;
  try {
    return await verify(row.pin_hash, pin);
  } catch {
    return false;
  }
}
