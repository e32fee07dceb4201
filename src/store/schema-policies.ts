/** Table types of migration 008-policies: Conditional access policies and named locations (issue 5 item 9). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by the work on this item
export interface PolicyTables {}
