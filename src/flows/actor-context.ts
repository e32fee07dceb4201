import { AsyncLocalStorage } from 'node:async_hooks';
import { invalidInput } from '../core/errors.js';
import type { Services } from '../services.js';
import type { AuditEntry } from '../store/audit-log.js';
import type { GroupCommit } from '../store/group-commit.js';

/**
 * Who, what and why (issue 5 item 13). Every admin change is audited by its flow with
 * `actor: admin-key:<id>` (or `cli`) — who; the key's name and role are on that key's own
 * `admin_key.created` record. This adds, to each record of one request or command whose actor
 * is the caller, the reason the administrator gave (`X-Countersign-Reason`, `--reason`) as
 * `actor_reason` — why. It is carried by AsyncLocalStorage
 * so that no flow has to pass it along, and stamped where records are made (`record`,
 * `audit`), in the caller's own context: on SQLite the work of many requests runs in one group
 * commit, outside any of their contexts, so the context is read when `writes.run` is called.
 */
export interface ActorDetail {
  /** The audit actor this detail belongs to: `admin-key:<id>` or `cli`. */
  readonly actor: string;
  readonly detail: Readonly<Record<string, string>>;
}

const current = new AsyncLocalStorage<ActorDetail>();

/** Runs `run` (and everything it starts) as `actor`: its audit records carry the detail. */
export function runAsActor<T>(actor: ActorDetail, run: () => T): T {
  return current.run(actor, run);
}

export const REASON_MAX = 500;

/**
 * Checks a reason an administrator gave: at most 500 characters and no control characters (a
 * line break in it would let it pose as another record where the log is read as text).
 * `field` names where it came from in the error: the header or the CLI option.
 */
export function parseReason(field: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalidInput(field, 'must be given once');
  if (value.trim() === '') throw invalidInput(field, 'must not be empty');
  if (value.length > REASON_MAX) throw invalidInput(field, `must be at most ${REASON_MAX} characters`);
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(value)) throw invalidInput(field, 'must not contain control characters');
  return value;
}

function stamp(entry: AuditEntry, actor: ActorDetail | undefined): AuditEntry {
  if (actor === undefined || entry.actor !== actor.actor || Object.keys(actor.detail).length === 0) return entry;
  return { ...entry, detail: { ...entry.detail, ...actor.detail } };
}

/**
 * The services a transport hands to flows: the same, except that audit records made while
 * running as an actor (runAsActor) carry its detail.
 */
export function withActorDetail(services: Services): Services {
  const writes: GroupCommit = {
    // Everything else (subscribe, …) as it is: the group commit is a plain object of closures.
    ...services.writes,
    run(work) {
      const actor = current.getStore();
      if (actor === undefined) return services.writes.run(work);
      return services.writes.run((db, record) => work(db, (entry) => record(stamp(entry, actor))));
    },
    audit: (entry) => services.writes.audit(stamp(entry, current.getStore())),
  };
  return { ...services, writes, audit: (entry) => services.audit(stamp(entry, current.getStore())) };
}
