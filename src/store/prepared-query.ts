import { CompiledQuery, type Compilable, type Kysely, type QueryResult } from 'kysely';
import type { Database } from './schema.js';

/**
 * A hot-path query written with Kysely's typed builder, built and compiled once per dialect, then
 * run with new values. Kysely builds every query anew (immutable nodes, then a compiler pass);
 * on the verify path that cost more CPU than SQLite's own work.
 *
 * The builder is called once with a marker object for each argument; the positions at which
 * each marker lands among the compiled parameters are recorded, and later calls put the real
 * values there. So a builder must hand its arguments to Kysely unchanged: no arithmetic on
 * them, no `in` lists made from them, and no argument that may be null in a comparison
 * (Kysely writes `= null` as `is null`, which a marker cannot become).
 */
class Marker {
  constructor(readonly index: number) {}
}

type Slot = { arg: number } | { value: unknown };
interface Compiled {
  readonly sql: string;
  readonly slots: readonly Slot[];
}

/**
 * The SQL texts of prepared queries, each with a statement name. On PostgreSQL the store's
 * connections send these texts as named prepared statements (database.ts): the server parses
 * and plans each once per connection instead of on every call.
 */
export const preparedStatementNames = new Map<string, string>();

export type PreparedQuery<Args extends readonly unknown[], Row> = (db: Kysely<Database>, ...args: Args) => Promise<QueryResult<Row>>;

export function preparedQuery<Args extends readonly unknown[], Row>(build: (db: Kysely<Database>, ...args: Args) => Compilable<Row>): PreparedQuery<Args, Row> {
  // One compiled form per dialect adapter class (a transaction shares its database's adapter).
  const compiled = new Map<unknown, Compiled>();
  const arity = build.length - 1;

  function compile(db: Kysely<Database>): Compiled {
    const markers = Array.from({ length: arity }, (_, i) => new Marker(i));
    const query = build(db, ...(markers as unknown as Args)).compile();
    const seen = new Set<number>();
    const slots = query.parameters.map((parameter): Slot => {
      if (!(parameter instanceof Marker)) return { value: parameter };
      seen.add(parameter.index);
      return { arg: parameter.index };
    });
    if (seen.size !== arity) throw new Error(`prepared query: ${arity - seen.size} of ${arity} arguments did not reach the SQL unchanged: ${query.sql}`);
    if (!preparedStatementNames.has(query.sql)) preparedStatementNames.set(query.sql, `cs_prepared_${preparedStatementNames.size + 1}`);
    return { sql: query.sql, slots };
  }

  return async (db, ...args) => {
    const adapter = db.getExecutor().adapter.constructor;
    let query = compiled.get(adapter);
    if (query === undefined) {
      query = compile(db);
      compiled.set(adapter, query);
    }
    const parameters = query.slots.map((slot) => ('arg' in slot ? args[slot.arg] : slot.value));
    return await db.executeQuery<Row>(CompiledQuery.raw(query.sql, parameters));
  };
}
