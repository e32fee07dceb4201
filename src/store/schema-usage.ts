/** Table types of migration 009-usage: Usage and reports: per-tenant daily usage counts and sign-in records (issue 5 items 10, 11). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by the work on this item
export interface UsageTables {}
