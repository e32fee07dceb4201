/** Table types of migration 012-enrollment: Registration: single-use enrollment links (issue 5 item 1). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by the work on this item
export interface EnrollmentTables {}
