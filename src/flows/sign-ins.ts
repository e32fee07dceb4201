import type { Kysely } from 'kysely';
import type { Services } from '../services.js';
import type { Database } from '../store/schema.js';
import type { SignInKind, SignInResult, SignInsTable } from '../store/schema-usage.js';
import { writeTransaction } from '../store/write-transaction.js';

/**
 * Sign-in records for reports: one compact row per decision that ends a sign-in, in `sign_ins`.
 *
 * Why a projection of the audit log, and not a row written by the sign-in itself: every
 * decision is already written to `audit_events` by the transaction that makes it (group commit,
 * store/group-commit.ts), with the user, application, IP and outcome. Writing a second row there
 * would put one more insert, and its indexes, on `/v1/verify` — the hot path `bench/verify.ts`
 * measures — for the benefit of reports read a few times a day. So the hot path writes nothing
 * more, and the reports copy what they need from the audit log when they are read: the rows
 * after a watermark (`store_meta` `sign_ins_seq`), read in `seq` order through the primary key,
 * turned into `sign_ins` rows (the method's type, the application of a challenge, the username
 * looked up once here, not at each report) and inserted keyed by the audit record's own `seq`.
 * Catching up twice (two reports at once, two processes) inserts nothing twice, and since `seq`
 * only grows, a report's cursor (a `seq`) is stable while new sign-ins arrive. The audit log stays
 * the one source of truth: `sign_ins` can be dropped and rebuilt from it.
 *
 * What counts as a sign-in:
 * - `preauth.decided` that ends the sign-in: `allow` (approved, method `none`, the reason says
 *   why: bypass, trusted_ip, remembered_device, cached, mfa_disabled …) or `deny` (denied);
 *   `challenge` and `enroll` do not end it (the verification that follows is recorded);
 * - `verification.approved` / `verification.denied`: a one-shot `/v1/verify` (kind `verify`) or a
 *   challenge's outcome (kind `challenge`), with the method's type (totp, oath, sms, voice, push;
 *   `code` for a wrong code that matched no method). Proving a phone number is not a sign-in;
 * - `fraud.reported` (result `fraud`; the reason is how it was reported: call, text, push);
 * - `app_password.used` / `app_password.denied` (kind and method `app_password`: single factor).
 * A wrong key pressed during a call (`verification.failed`) is one attempt, not the outcome: the
 * call's `verification.denied` is.
 */
const SIGN_IN_ACTIONS = ['preauth.decided', 'verification.approved', 'verification.denied', 'fraud.reported', 'app_password.used', 'app_password.denied'] as const;
const WATERMARK = 'sign_ins_seq';
const BATCH = 1000;
export const DAY_MS = 86_400_000;

/** Brings `sign_ins` up to date with the audit log. Cheap when nothing is new (two indexed reads). */
export async function syncSignIns(services: Services): Promise<void> {
  for (;;) {
    const more = await writeTransaction(services.db, services.store.dialect, async (trx) => {
      const after = await signInsWatermark(trx);
      const head = Number((await trx.selectFrom('audit_head').select('seq').where('id', '=', 1).executeTakeFirstOrThrow()).seq);
      if (head <= after) return false;
      const audit = await trx
        .selectFrom('audit_events')
        .select(['seq', 'at', 'tenant_id', 'actor', 'action', 'target', 'detail'])
        .where('seq', '>', after)
        .where('seq', '<=', head)
        .where('action', 'in', SIGN_IN_ACTIONS)
        .orderBy('seq')
        .limit(BATCH)
        .execute();
      const full = audit.length === BATCH;
      const rows = await project(trx, audit);
      for (let i = 0; i < rows.length; i += 100) {
        await trx
          .insertInto('sign_ins')
          .values(rows.slice(i, i + 100))
          .onConflict((oc) => oc.column('seq').doNothing())
          .execute();
      }
      const reached = full ? Number(audit[audit.length - 1]?.seq ?? after) : head;
      await trx
        .insertInto('store_meta')
        .values({ name: WATERMARK, value: String(reached) })
        .onConflict((oc) => oc.column('name').doUpdateSet({ value: String(reached) }))
        .execute();
      return full;
    });
    if (!more) return;
  }
}

/** The last audit `seq` already projected. */
export async function signInsWatermark(db: Kysely<Database>): Promise<number> {
  const mark = await db.selectFrom('store_meta').select('value').where('name', '=', WATERMARK).executeTakeFirst();
  return mark === undefined ? 0 : Number(mark.value);
}

interface AuditRow {
  seq: number;
  at: number;
  tenant_id: string | null;
  actor: string;
  action: string;
  target: string | null;
  detail: string;
}

type Detail = Record<string, unknown>;
const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null);

async function project(db: Kysely<Database>, audit: readonly AuditRow[]): Promise<SignInsTable[]> {
  const parsed = audit.map((row) => ({ row, detail: JSON.parse(row.detail) as Detail }));
  const challengeIds = unique(parsed.map((p) => text(p.detail['challenge'])));
  const methodIds = unique(parsed.map((p) => text(p.detail['method'])));
  const userIds = unique(parsed.map((p) => p.row.target));
  const challenges = new Map<string, { type: string; application_id: string | null; ip: string | null; method_id: string | null }>();
  for (const chunk of chunks(challengeIds)) {
    for (const c of await db.selectFrom('challenges').select(['id', 'type', 'application_id', 'ip', 'method_id']).where('id', 'in', chunk).execute()) challenges.set(c.id, c);
  }
  const methodTypes = new Map<string, string>();
  for (const chunk of chunks(methodIds)) {
    for (const m of await db.selectFrom('methods').select(['id', 'type']).where('id', 'in', chunk).execute()) methodTypes.set(m.id, m.type);
  }
  const usernames = new Map<string, string>();
  for (const chunk of chunks(userIds)) {
    for (const u of await db.selectFrom('users').select(['id', 'username']).where('id', 'in', chunk).execute()) usernames.set(u.id, u.username);
  }

  const rows: SignInsTable[] = [];
  for (const { row, detail } of parsed) {
    if (row.tenant_id === null) continue;
    const challengeId = text(detail['challenge']);
    const challenge = challengeId === null ? undefined : challenges.get(challengeId);
    const methodId = text(detail['method']) ?? challenge?.method_id ?? null;
    // Proving a phone number (method `verify:<type>`) is not a sign-in.
    if (methodId?.startsWith('verify:') === true) continue;
    const shape = classify(row.action, detail, challenge?.type ?? (methodId === null ? undefined : methodTypes.get(methodId)), challengeId !== null);
    if (shape === undefined) continue;
    const at = Number(row.at);
    rows.push({
      seq: Number(row.seq),
      tenant_id: row.tenant_id,
      at,
      day: Math.floor(at / DAY_MS),
      user_id: row.target,
      username: text(detail['username']) ?? (row.target === null ? null : (usernames.get(row.target) ?? null)),
      application_id: row.actor.startsWith('application:') ? row.actor.slice('application:'.length) : (challenge?.application_id ?? null),
      kind: shape.kind,
      method: shape.method,
      result: shape.result,
      reason: shape.reason,
      ip: text(detail['ip']) ?? challenge?.ip ?? null,
      challenge_id: challengeId,
    });
  }
  return rows;
}

function classify(action: string, detail: Detail, methodType: string | undefined, viaChallenge: boolean): { kind: SignInKind; method: string; result: SignInResult; reason: string | null } | undefined {
  const reason = text(detail['reason']);
  switch (action) {
    case 'preauth.decided': {
      const result = detail['result'];
      if (result !== 'allow' && result !== 'deny') return undefined;
      return { kind: 'preauth', method: 'none', result: result === 'allow' ? 'approved' : 'denied', reason };
    }
    case 'verification.approved':
    case 'verification.denied':
      return { kind: viaChallenge ? 'challenge' : 'verify', method: methodType ?? 'code', result: action === 'verification.approved' ? 'approved' : 'denied', reason: action === 'verification.approved' ? null : reason };
    case 'fraud.reported':
      return { kind: 'challenge', method: methodType ?? 'code', result: 'fraud', reason: text(detail['source']) };
    case 'app_password.used':
      return { kind: 'app_password', method: 'app_password', result: 'approved', reason: null };
    case 'app_password.denied':
      return { kind: 'app_password', method: 'app_password', result: 'denied', reason };
    default:
      return undefined;
  }
}

function unique(values: readonly (string | null)[]): string[] {
  return [...new Set(values.filter((v): v is string => v !== null))];
}

function chunks(values: readonly string[], size = 500): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}
