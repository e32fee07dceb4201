import { createHmac, hkdfSync, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { CallStep, Prompt } from '../channels/types.js';
import { answerCall, DEFAULT_PROMPTS, parseCallState, pressKeys, type CallStepPlan, type CallTransition, type VoiceMode } from '../core/call-script.js';
import { CountersignError, invalidInput } from '../core/errors.js';
import { maskPhone } from '../core/phone.js';
import type { TenantSettings } from '../core/settings.js';
import { actorOf, type Principal, type Services } from '../services.js';
import { reserveAttempt } from '../store/attempts.js';
import type { ChallengeRow, Database, TenantRow } from '../store/schema.js';
import { decideChallenge, isOpen, OPEN_STATUSES, viewChallenge, type ChallengeView } from './challenge-state.js';
import { tenantPrompts } from './greetings.js';
import { reportFraud } from './fraud.js';
import { verifyPin } from './pins.js';
import type { PhoneMethod } from './phone-methods.js';
import { admitPhoneSend, placeCall, sendText, type PhoneSendContext } from './telephony.js';
import { refusedByPolicyNow } from './policies.js';
import { tenantSettings } from './tenants.js';

/**
 * Phone call and text message challenges (Azure MFA's "Call phone" and "Text code to phone").
 *
 * - A one-way text carries a 6-digit code from the CSPRNG, valid 10 minutes (SECURITY.md
 *   OOB-01, OOB-03); the challenge keeps only HMAC(key, challenge id ‖ code) (OOB-04), so the
 *   code is single use and bound to its challenge (OOB-02). It is answered through `/answer`,
 *   counted against the user's lockout like any code; a new text does not reset that count (RL-03).
 * - A two-way text asks the user to reply with the code (or Y); the reply comes back through
 *   the provider's inbound webhook or `countersign outbox reply`, from the number it was sent to.
 * - A call runs core/call-script.ts: # approves, or the PIN then # in PIN mode, the fraud code
 *   then # reports fraud (1 confirms); in `code` mode the call reads a code out.
 * The outcome of a call or reply arrives asynchronously and wakes `GET /v1/challenges/{id}?wait=`.
 */
export const SMS_CODE_TTL_MS = 10 * 60_000;

interface PreparedPhoneChallenge {
  row: ChallengeRow;
  method: PhoneMethod;
  code: string | undefined;
}

/** Derived from the audit key (kept in the keyring, never in the database): the key of OOB code hashes. */
const codeKeys = new WeakMap<Buffer, Buffer>();
function codeKey(services: Services): Buffer {
  let key = codeKeys.get(services.keyring.auditKey);
  if (key === undefined) {
    key = Buffer.from(hkdfSync('sha256', services.keyring.auditKey, Buffer.alloc(0), 'countersign oob-code v1', 32));
    codeKeys.set(services.keyring.auditKey, key);
  }
  return key;
}

export function hashOobCode(services: Services, challengeId: string, code: string): string {
  return createHmac('sha256', codeKey(services)).update(`${challengeId}:${code}`).digest('hex');
}

function codeMatches(services: Services, row: ChallengeRow, code: string): boolean {
  if (row.code_hash === null) return false;
  const expected = Buffer.from(row.code_hash, 'hex');
  const actual = Buffer.from(hashOobCode(services, row.id, code), 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** Six digits, uniformly, from the injected random source (OOB-03). */
export function newOobCode(services: Services): string {
  for (;;) {
    const value = services.random(4).readUInt32BE(0);
    // Rejection sampling: 4,294,000,000 is the largest multiple of 10^6 below 2^32.
    if (value < 4_294_000_000) return String(value % 1_000_000).padStart(6, '0');
  }
}

function sendContext(tenant: TenantRow, row: ChallengeRow): PhoneSendContext {
  return { tenant, userId: row.user_id, challengeId: row.id, ip: row.ip, purpose: row.method_id?.startsWith('verify:') === true ? 'phone_verification' : 'challenge' };
}

/** Checks the limits, then builds the challenge row (not stored yet). */
export async function preparePhoneChallenge(
  services: Services,
  tenant: TenantRow,
  base: Omit<ChallengeRow, 'method_id' | 'type' | 'status' | 'expires_at' | 'destination' | 'code_hash' | 'mode' | 'reason' | 'call_state' | 'reference'>,
  method: PhoneMethod,
  options: { forceCode?: boolean } = {},
): Promise<PreparedPhoneChallenge> {
  const settings = tenantSettings(tenant);
  if (method.type === 'voice' && services.channels.voice === undefined) {
    throw new CountersignError('CONFLICT', `the ${services.channels.sms.provider} telephony provider cannot place calls; use a text message or configure Twilio`);
  }
  const now = services.clock().getTime();
  // A locked-out user gets no texts or calls until the lockout ends (they would cost money and could not approve).
  const lock = await services.db.selectFrom('users').select('locked_until').where('id', '=', base.user_id).executeTakeFirst();
  if (lock?.locked_until !== null && lock?.locked_until !== undefined && Number(lock.locked_until) > now) {
    throw new CountersignError('RATE_LIMITED', 'the user is locked out after too many failed verifications', { retryAfter: Math.ceil((Number(lock.locked_until) - now) / 1000) });
  }
  await admitPhoneSend(services, { tenant, userId: base.user_id, challengeId: base.id, ip: base.ip, purpose: options.forceCode === true ? 'phone_verification' : 'challenge' }, method.number);
  // A number being proven always gets a code to read back: a one-way text, or a call that says it.
  const mode = options.forceCode === true ? (method.type === 'sms' ? 'one_way' : 'code') : method.type === 'sms' ? settings.sms_mode : settings.voice_mode;
  const needsCode = method.type === 'sms' || mode === 'code';
  const code = needsCode ? newOobCode(services) : undefined;
  const ttl = method.type === 'sms' ? (mode === 'two_way' ? settings.sms_two_way_timeout_seconds * 1000 : SMS_CODE_TTL_MS) : mode === 'code' ? SMS_CODE_TTL_MS : settings.challenge_ttl_seconds * 1000;
  const row: ChallengeRow = {
    ...base,
    method_id: method.id,
    type: method.type,
    status: method.type === 'sms' ? 'sent' : 'calling',
    expires_at: now + ttl,
    destination: method.number,
    code_hash: code === undefined ? null : hashOobCode(services, base.id, code),
    mode,
    reason: null,
    call_state: null,
    reference: randomUUID(),
  };
  if (code !== undefined && method.type === 'voice') {
    // The call says the code when it is answered, maybe minutes from now: kept sealed until then.
    const { sealed, keyId } = await services.secrets.seal(Buffer.from(code, 'utf8'), `call-code:${row.id}`);
    row.call_state = JSON.stringify({ stage: 'main', retries: 0, code: sealed, key: keyId });
  }
  return { row, method, code };
}

/** Sends the text or places the call of a stored challenge. A provider that refuses fails the challenge (502). */
export async function dispatchPhoneChallenge(services: Services, tenant: TenantRow, row: ChallengeRow, prepared: PreparedPhoneChallenge): Promise<ChallengeRow> {
  const settings = tenantSettings(tenant);
  const reference = row.reference ?? randomUUID();
  const dispatch =
    row.type === 'sms'
      ? await sendText(services, sendContext(tenant, row), row.destination ?? '', smsText(tenant, settings, row, prepared.code ?? ''), reference)
      : await placeCall(services, sendContext(tenant, row), row.destination ?? '', await renderStep(services, tenant.id, settings, answerCall(voiceMode(row)).step, prepared.code), reference);
  await services.audit({
    tenantId: tenant.id,
    actor: 'system',
    action: row.type === 'sms' ? 'phone.text_sent' : 'phone.call_placed',
    target: row.user_id,
    detail: { challenge: row.id, to: maskPhone(row.destination ?? ''), provider: row.type === 'sms' ? services.channels.sms.provider : (services.channels.voice?.provider ?? ''), status: dispatch.status },
  });
  if (dispatch.status === 'failed') {
    await decideChallenge(services, row.id, 'failed', 'provider_error');
    throw new CountersignError('PROVIDER_FAILED', `the ${row.type === 'sms' ? 'text' : 'call'} could not be sent: ${dispatch.error ?? 'the provider refused it'}`);
  }
  return row;
}

function smsText(tenant: TenantRow, settings: TenantSettings, row: ChallengeRow, code: string): string {
  if (row.method_id?.startsWith('verify:') === true) return `${code} is your ${tenant.name} code to verify this phone number. It expires in 10 minutes.`;
  const what = row.app === null ? `${tenant.name} sign-in` : `${tenant.name} sign-in to ${row.app}`;
  if (row.mode === 'two_way') {
    const fraud = settings.fraud_alert_enabled ? ` If this was not you, reply ${settings.fraud_code}.` : '';
    return `${what}: reply ${code} (or Y) to approve.${fraud}`;
  }
  return `${code} is your ${tenant.name} verification code${row.app === null ? '' : ` for ${row.app}`}. It expires in 10 minutes. Do not share it.`;
}

function voiceMode(row: ChallengeRow): VoiceMode {
  return row.mode === 'pin' || row.mode === 'code' ? row.mode : 'press';
}

/** Fills a step's prompts with the tenant's own (flows/greetings.ts) or the built-in ones: what providers render. */
async function renderStep(services: Services, tenantId: string, settings: TenantSettings, plan: CallStepPlan, code?: string): Promise<CallStep> {
  const own = plan.say.length === 0 ? new Map<string, { text: string; audioUrl?: string }>() : await tenantPrompts(services, tenantId, settings.phone_language);
  const spoken = code === undefined ? '' : [...code].join(', ');
  const prompts: Prompt[] = plan.say.map((p) => {
    const custom = own.get(p.kind);
    // A recording cannot say this call's code: the code prompt is always spoken.
    const audioUrl = p.kind === 'code' ? undefined : custom?.audioUrl;
    return {
      kind: p.kind,
      text: (custom?.text ?? DEFAULT_PROMPTS[p.kind]).replaceAll('{fraud_code}', settings.fraud_code).replaceAll('{code}', spoken),
      language: settings.phone_language,
      ...(audioUrl === undefined ? {} : { audioUrl }),
    };
  });
  return { prompts, ...(plan.gather === undefined ? {} : { gather: { timeoutSeconds: 10, maxDigits: plan.gather.maxDigits } }), hangup: plan.hangup };
}

const GOODBYE: CallStepPlan = { say: [], hangup: true };

async function loadByReference(db: Kysely<Database>, reference: string): Promise<ChallengeRow | undefined> {
  return db.selectFrom('challenges').selectAll().where('reference', '=', reference).executeTakeFirst();
}

async function tenantOf(services: Services, tenantId: string): Promise<TenantRow> {
  return services.db.selectFrom('tenants').selectAll().where('id', '=', tenantId).executeTakeFirstOrThrow();
}

/** The callee picked up: the call moves to `answered`, and this is what they hear first. */
export async function callAnswered(services: Services, reference: string): Promise<CallStep> {
  const row = await loadByReference(services.db, reference);
  if (row === undefined || !isOpen(row.status) || Number(row.expires_at) <= services.clock().getTime()) {
    services.log.info({ reference }, 'a call was answered for no open challenge');
    return { prompts: [{ kind: 'denied', text: 'This sign-in request has ended. Goodbye.', language: 'en-US' }], hangup: true };
  }
  const settings = tenantSettings(await tenantOf(services, row.tenant_id));
  await services.db.updateTable('challenges').set({ status: 'answered' }).where('id', '=', row.id).where('status', '=', 'calling').execute();
  let code: string | undefined;
  if (voiceMode(row) === 'code') code = await openCallCode(services, row);
  return renderStep(services, row.tenant_id, settings, answerCall(voiceMode(row)).step, code);
}

async function openCallCode(services: Services, row: ChallengeRow): Promise<string | undefined> {
  const state = row.call_state === null ? {} : (JSON.parse(row.call_state) as { code?: string; key?: string });
  if (state.code === undefined || state.key === undefined) return undefined;
  const code = (await services.secrets.open(state.code, state.key, `call-code:${row.id}`)).toString('utf8');
  // Said once: the sealed copy goes; only the hash stays to check what the user types.
  await services.db.updateTable('challenges').set({ call_state: JSON.stringify({ stage: 'done', retries: 0 }) }).where('id', '=', row.id).execute();
  return code;
}

const KEYS = /^[0-9*]{0,20}#?$/;

/**
 * Keys pressed during a call: digits and `*`, then `#` when the gather ended on it; '' when the
 * callee pressed nothing before the timeout. Malformed keys are refused (400) and change nothing.
 */
export async function callKeys(services: Services, reference: string, keys: string): Promise<CallStep> {
  if (!KEYS.test(keys)) throw invalidInput('digits', 'must be up to 20 of 0-9 and *, optionally ending in #');
  const row = await loadByReference(services.db, reference);
  if (row === undefined || !isOpen(row.status)) {
    services.log.info({ reference }, 'keys pressed on a call with no open challenge were ignored');
    return { prompts: [{ kind: 'denied', text: 'This sign-in request has ended. Goodbye.', language: 'en-US' }], hangup: true };
  }
  const tenant = await tenantOf(services, row.tenant_id);
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  if (Number(row.expires_at) <= now) {
    await decideChallenge(services, row.id, 'expired');
    return renderStep(services, tenant.id, settings, { say: [{ kind: 'denied' }], hangup: true });
  }
  const mode = voiceMode(row);
  const state = parseCallState(row.call_state);
  const user = await services.db.selectFrom('users').select('username').where('id', '=', row.user_id).executeTakeFirstOrThrow();
  const ended = (kind: 'denied' | 'success') => renderStep(services, tenant.id, settings, { say: [{ kind }], hangup: true });
  let pinMatches: boolean | undefined;
  if (mode === 'pin' && state.stage === 'main' && keys.endsWith('#') && keys !== `${settings.fraud_code}#`) {
    pinMatches = await verifyPin(services, row.user_id, keys.slice(0, -1));
    // Every wrong PIN is a failed verification against the user's lockout (Azure counts denials);
    // once locked, the call ends.
    if (!pinMatches && !(await countFailure(services, tenant, row, user.username, 'wrong_pin'))) {
      await decideChallenge(services, row.id, 'denied', 'locked_out');
      return ended('denied');
    }
  }
  const transition: CallTransition = pressKeys(state, keys, { mode, fraudEnabled: settings.fraud_alert_enabled, fraudCode: settings.fraud_code, pinMatches });
  if (transition.outcome === undefined) {
    // Only while the call is still open: a replayed request after the decision changes nothing.
    await services.db.updateTable('challenges').set({ call_state: JSON.stringify(transition.state) }).where('id', '=', row.id).where('status', 'in', OPEN_STATUSES).execute();
    return renderStep(services, tenant.id, settings, transition.step);
  }
  const outcome = transition.outcome;
  if (outcome.status === 'fraud') {
    await reportFraud(services, tenant, row, 'call');
    return renderStep(services, tenant.id, settings, transition.step);
  }
  if (outcome.status === 'approved') {
    // Approved only if the user may still sign in now (not locked, not blocked — e.g. by a fraud
    // report on another call), in the same transaction as the decision.
    const { outcome: settled } = await settle(services, tenant, row, user.username, true, 'approved');
    if (settled === 'approved') return renderStep(services, tenant.id, settings, transition.step);
    return settled === 'closed' ? renderStep(services, tenant.id, settings, GOODBYE) : ended('denied');
  }
  if (outcome.status === 'denied' && outcome.reason === 'wrong_key') await countFailure(services, tenant, row, user.username, 'wrong_key');
  if (await decideChallenge(services, row.id, outcome.status, outcome.reason)) {
    await services.audit({ tenantId: tenant.id, actor: 'system', action: 'verification.denied', target: row.user_id, detail: { challenge: row.id, method: row.method_id, reason: outcome.reason } });
    return renderStep(services, tenant.id, settings, transition.step);
  }
  return renderStep(services, tenant.id, settings, GOODBYE);
}

/** Counts one failed verification against the user's lockout, with its audit records; false when the user is locked or blocked already. */
async function countFailure(services: Services, tenant: TenantRow, row: ChallengeRow, username: string, reason: string): Promise<boolean> {
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  const policy = { threshold: settings.lockout_threshold, resetMinutes: settings.lockout_reset_minutes, lockoutMinutes: settings.lockout_minutes };
  return services.writes.run(async (db, record) => {
    const reservation = await reserveAttempt(db, tenant.id, username, policy, now, 'failure');
    if (!reservation.reserved) return false;
    record({ tenantId: tenant.id, actor: 'system', action: 'verification.failed', target: row.user_id, detail: { challenge: row.id, method: row.method_id, reason } });
    if (reservation.lockedNow) record({ tenantId: tenant.id, actor: 'system', action: 'user.locked_out', target: row.user_id, detail: { threshold: settings.lockout_threshold } });
    return true;
  });
}

/** Twilio's (or another provider's) call and message status names that end a challenge, with the reason shown. */
const ENDING: Record<string, string> = { 'no-answer': 'no_answer', busy: 'busy', failed: 'provider_error', canceled: 'canceled', completed: 'hang_up', undelivered: 'undelivered' };

/**
 * A provider's status report for a text or call. The telephony log records it; a call that
 * ends before a decision (no answer, busy, hang-up) or a text that cannot be delivered ends
 * its challenge as `failed` with that reason.
 */
export async function providerStatus(services: Services, reference: string, status: string): Promise<void> {
  const row = await loadByReference(services.db, reference);
  if (row === undefined) return;
  const reason = ENDING[status];
  // A one-way text that was delivered, or a read-out code call that completed, waits for /answer.
  const waitsForAnswer = row.code_hash !== null && (row.type === 'sms' ? row.mode !== 'two_way' : status === 'completed');
  if (reason !== undefined && isOpen(row.status) && !(waitsForAnswer && (status === 'completed' || status === 'delivered'))) {
    if (await decideChallenge(services, row.id, 'failed', reason)) {
      await services.audit({ tenantId: row.tenant_id, actor: 'system', action: 'verification.denied', target: row.user_id, detail: { challenge: row.id, method: row.method_id, reason } });
    }
  }
}

/**
 * A text received from a phone (two-way SMS). Through a provider's webhook it may answer any
 * open two-way text challenge sent to that number — in any tenant, since one phone can be
 * registered in several — so the reply must say which: a code approves the one challenge it was
 * made for; `Y` approves only when exactly one is open (otherwise the user is asked for the code
 * by being ignored, and it is logged); the fraud code reports every open one whose tenant uses
 * that code. From the local outbox, a reply answers the challenge of the text it replies to
 * (`only`), never another tenant's. Texts matching nothing are ignored and logged (number masked).
 */
export async function inboundText(services: Services, from: string, text: string, only?: { challengeId: string | null }): Promise<'approved' | 'denied' | 'fraud' | 'ignored'> {
  const now = services.clock().getTime();
  let query = services.db
    .selectFrom('challenges')
    .selectAll()
    .where('destination', '=', from)
    .where('type', '=', 'sms')
    .where('mode', '=', 'two_way')
    .where('status', 'in', OPEN_STATUSES)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc');
  if (only !== undefined) query = query.where('id', '=', only.challengeId ?? '');
  const open = await query.execute();
  const ignore = (why: string) => {
    services.log.info({ from: maskPhone(from) }, `an incoming text was ignored: ${why}`);
    return 'ignored' as const;
  };
  if (open.length === 0) return ignore('no open two-way text challenge for this number');
  const reply = text.trim().toUpperCase();
  const tenants = new Map<string, TenantRow>();
  for (const row of open) if (!tenants.has(row.tenant_id)) tenants.set(row.tenant_id, await tenantOf(services, row.tenant_id));
  const tenantFor = (row: ChallengeRow): TenantRow => {
    const tenant = tenants.get(row.tenant_id);
    if (tenant === undefined) throw new Error(`tenant ${row.tenant_id} of challenge ${row.id} was not loaded`);
    return tenant;
  };

  const reported = open.filter((row) => {
    const settings = tenantSettings(tenantFor(row));
    return settings.fraud_alert_enabled && reply === settings.fraud_code;
  });
  if (reported.length > 0) {
    for (const row of reported) await reportFraud(services, tenantFor(row), row, 'text');
    return 'fraud';
  }
  let target: ChallengeRow | undefined;
  let approves = false;
  if (/^\d{6}$/.test(reply)) {
    target = open.find((row) => codeMatches(services, row, reply));
    approves = target !== undefined;
    if (target === undefined && open.length > 1) return ignore('a code that matches none of the open challenges for this number');
  } else if (open.length > 1) {
    return ignore('several challenges are open for this number: only a reply with the code says which');
  } else {
    approves = reply === 'Y' || reply === 'YES';
  }
  const row = target ?? open[0];
  if (row === undefined) return 'ignored';
  const user = await services.db.selectFrom('users').select('username').where('id', '=', row.user_id).executeTakeFirstOrThrow();
  const { outcome } = await settle(services, tenantFor(row), row, user.username, approves, 'wrong_reply');
  return outcome === 'approved' ? 'approved' : outcome === 'closed' ? 'ignored' : 'denied';
}

/**
 * Decides a phone challenge against the user's lockout: the attempt is reserved first (a locked
 * or blocked user is refused), then the challenge moves once, in the same transaction as the
 * attempt and its audit record.
 */
async function settle(
  services: Services,
  tenant: TenantRow,
  row: ChallengeRow,
  username: string,
  matched: boolean,
  failReason: string,
  principal?: Principal,
): Promise<{ row: ChallengeRow; outcome: 'approved' | 'denied' | 'refused' | 'closed' }> {
  if (matched && (await refusedByPolicyNow(services, tenant, row))) {
    const now = await services.db.selectFrom('challenges').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
    return { row: now, outcome: now.status === 'denied' ? 'denied' : 'closed' };
  }
  const settings = tenantSettings(tenant);
  const now = services.clock().getTime();
  const policy = { threshold: settings.lockout_threshold, resetMinutes: settings.lockout_reset_minutes, lockoutMinutes: settings.lockout_minutes };
  const actor = principal === undefined ? 'system' : actorOf(principal);
  const result = await services.writes.run(async (db, record) => {
    const reservation = await reserveAttempt(db, tenant.id, username, policy, now, matched ? 'success' : 'failure');
    const base = { tenantId: tenant.id, actor, target: row.user_id };
    if (!reservation.reserved) {
      const user = await db.selectFrom('users').select(['status', 'blocked_reason']).where('id', '=', row.user_id).executeTakeFirst();
      const reason = user?.status === 'blocked' ? 'blocked' : 'locked_out';
      await db.updateTable('challenges').set({ status: 'denied', reason, decided_at: now }).where('id', '=', row.id).where('status', 'in', OPEN_STATUSES).execute();
      record({ ...base, action: 'verification.denied', detail: { challenge: row.id, method: row.method_id, reason } });
      return { status: 'denied' as const, reason };
    }
    if (matched) {
      const moved = await db
        .updateTable('challenges')
        .set({ status: 'approved', reason: null, decided_at: now })
        .where('id', '=', row.id)
        .where('status', 'in', OPEN_STATUSES)
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (moved.numUpdatedRows === 1n) {
        record({ ...base, action: 'verification.approved', detail: { challenge: row.id, method: row.method_id } });
        return { status: 'approved' as const, reason: null };
      }
      // Decided meanwhile by another answer, or expired: this one counts as a failure.
      await reserveAttempt(db, tenant.id, username, policy, now, 'failure');
      return { status: 'closed' as const, reason: null };
    }
    record({ ...base, action: 'verification.denied', detail: { challenge: row.id, method: row.method_id, reason: failReason } });
    if (reservation.lockedNow) record({ ...base, action: 'user.locked_out', detail: { threshold: settings.lockout_threshold } });
    return { status: 'refused' as const, reason: failReason };
  });
  if (result.status === 'approved' || result.status === 'denied') services.notifier.publish(row.id);
  const fresh = await services.db.selectFrom('challenges').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
  if (result.status === 'refused' && row.mode === 'two_way' && isOpen(fresh.status)) {
    // A wrong reply ends a two-way text: the user is told to start again.
    await decideChallenge(services, row.id, 'denied', failReason);
    return { row: { ...fresh, status: 'denied', reason: failReason }, outcome: 'denied' };
  }
  return { row: result.status === 'refused' ? { ...fresh, reason: failReason } : fresh, outcome: result.status };
}

/**
 * `/answer` for a one-way text code or a code read out by a call: the attempt is taken from the
 * challenge first (at most challenge_max_attempts codes are checked), then the code is checked
 * against its keyed hash and settled against the lockout.
 */
export async function answerPhoneCode(services: Services, principal: Principal, tenant: TenantRow, row: ChallengeRow, code: unknown): Promise<ChallengeView> {
  if (typeof code !== 'string' || !/^\d{6}$/.test(code.replace(/\s/g, ''))) throw invalidInput('code', 'must be the 6 digits of the text or call');
  const digits = code.replace(/\s/g, '');
  if (row.mode === 'two_way') throw new CountersignError('CONFLICT', 'a two-way text challenge is answered by replying to the text');
  if (Number(row.expires_at) <= services.clock().getTime()) {
    // OOB-01: a code is good for 10 minutes, however it is answered.
    await decideChallenge(services, row.id, 'expired');
    throw new CountersignError('CONFLICT', 'the challenge is expired, no longer pending');
  }
  const max = tenantSettings(tenant).challenge_max_attempts;
  const taken = await services.db
    .updateTable('challenges')
    .set((eb) => ({ attempts: eb('attempts', '+', 1) }))
    .where('id', '=', row.id)
    .where('status', 'in', OPEN_STATUSES)
    .where('attempts', '<', max)
    .returning('attempts')
    .executeTakeFirst();
  if (taken === undefined) throw new CountersignError('CONFLICT', 'the challenge has no attempts left or was decided by another request');
  const user = await services.db.selectFrom('users').select('username').where('id', '=', row.user_id).executeTakeFirstOrThrow();
  const { row: settled, outcome } = await settle(services, tenant, row, user.username, codeMatches(services, row, digits), 'invalid_code', principal);
  if (outcome === 'approved') return viewChallenge(settled);
  // Another answer decided it meanwhile: this one must not read as that approval.
  if (outcome === 'closed') throw new CountersignError('CONFLICT', 'the challenge was decided by another request');
  if (outcome === 'refused' && isOpen(settled.status) && Number(taken.attempts) >= max) {
    await decideChallenge(services, row.id, 'failed', 'invalid_code');
    return { ...viewChallenge({ ...settled, status: 'failed' }), reason: 'invalid_code' };
  }
  if (outcome === 'refused' && !isOpen(settled.status)) throw new CountersignError('CONFLICT', 'the challenge was decided by another request');
  return { ...viewChallenge(settled), reason: settled.reason ?? 'invalid_code' };
}
