import { parse, type Info } from 'csv-parse/sync';
import { CountersignError } from './errors.js';

/**
 * Reads a CSV file (parsed by the csv-parse library) into rows that remember the line they start
 * on, so every refused line can be reported where it is. A file that cannot be parsed at all is
 * refused whole (INVALID_FILE), so that nothing from it is stored.
 *
 * Security invariant: no message built here quotes the file. A field may be a secret key (OATH
 * token files), so csv-parse's own messages, which do quote it, are cut down to their title and
 * line, and its error is not attached as a `cause` either (causes end up in logs).
 */
export interface CsvRow {
  /** 1-based physical line on which the record starts (a quoted line break does not move it). */
  line: number;
  fields: string[];
}

export interface CsvFile {
  /** The first record, when its first field names `headerFirstField`; otherwise undefined. */
  header: string[] | undefined;
  /** The data records; blank lines and lines of bare commas are left out. */
  rows: CsvRow[];
}

export interface ReadCsvOptions {
  /** The first record is the header when its first field is this name (compared by `headerKey`). */
  headerFirstField: string;
  /** What messages call the file: "the token file is empty". Defaults to "file". */
  fileNoun?: string;
}

/** What csv-parse returns per record with `info: true` (its typings do not model that option). */
interface CsvRecord {
  record: string[];
  info: Info;
}

/** Header names compared without case, spaces or underscores: "Display Name" = "display_name". */
export function headerKey(name: string): string {
  return name.toLowerCase().replace(/[\s_-]+/g, '');
}

export function readCsv(text: string, options: ReadCsvOptions): CsvFile {
  const noun = options.fileNoun ?? 'file';
  // The BOM is dropped here rather than by csv-parse (`bom: true`), so that the byte offsets it
  // reports index exactly the data the lines are counted in.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (body.trim() === '') throw new CountersignError('INVALID_FILE', `the ${noun} is empty`);
  // A Buffer, so that info.bytes (UTF-8 offsets) index the same data we count lines in.
  const data = Buffer.from(body, 'utf8');
  let records: CsvRecord[];
  try {
    records = parse(data, {
      trim: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
    }) as unknown as CsvRecord[];
  } catch (error) {
    throw new CountersignError('INVALID_FILE', `the ${noun} is not valid CSV: ${describeCsvError(error)}`);
  }

  const lines = new LineCounter(data);
  const located: CsvRow[] = [];
  // info.bytes is where a record ends (its line break included), so the next one starts at or
  // after it; csv-parse's own info.lines counts to the end of a record, not its start.
  let previousEnd = 0;
  for (const { record, info } of records) {
    located.push({ line: lines.lineAt(previousEnd), fields: record });
    previousEnd = info.bytes;
  }

  const first = located[0]?.fields;
  const hasHeader = first !== undefined && headerKey(first[0] ?? '') === headerKey(options.headerFirstField);
  return {
    header: hasHeader ? first : undefined,
    // A line of bare commas (spreadsheets leave them behind) carries nothing: skip it quietly.
    rows: located.slice(hasHeader ? 1 : 0).filter((row) => !row.fields.every((field) => field === '')),
  };
}

/**
 * csv-parse messages quote the offending field, which may be a secret key, so only their title
 * ("Quote Not Closed") and line are kept.
 */
function describeCsvError(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  const title = error.message.split(':')[0] ?? 'parse error';
  const line = 'lines' in error && typeof error.lines === 'number' ? ` at line ${error.lines}` : '';
  return `${title}${line}`;
}

/**
 * Maps byte offsets to 1-based line numbers, for CRLF, LF and lone-CR files alike. Offsets are
 * asked in increasing order, so it walks the data once.
 */
class LineCounter {
  private cursor = 0;
  private line = 1;

  constructor(private readonly data: Uint8Array) {}

  /**
   * Line of the first non-blank line at or after `offset`. csv-parse skips lines that are empty
   * or (with `trim`) hold only the bytes it trims, so those are stepped over too; a record's own
   * leading spaces stay on its line, so skipping them does not move it.
   */
  lineAt(offset: number): number {
    let start = offset;
    while (start < this.data.length && isBlank(this.data[start])) start++;
    for (; this.cursor < start; this.cursor++) {
      const byte = this.data[this.cursor];
      if (byte === 0x0a || (byte === 0x0d && this.data[this.cursor + 1] !== 0x0a)) this.line++;
    }
    return this.line;
  }
}

/** The bytes csv-parse trims with `trim: true`: CR, LF, form feed, space, tab. */
function isBlank(byte: number | undefined): boolean {
  return byte === 0x0d || byte === 0x0a || byte === 0x0c || byte === 0x20 || byte === 0x09;
}

/**
 * One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled. A
 * text cell that a spreadsheet would run as a formula (starting with = + - @, or a tab or
 * carriage return before one) is prefixed with ' (OWASP "CSV injection"); numbers are written
 * as they are, so a negative count stays a number.
 */
export function csvCell(value: string | number | boolean | null | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'string') return String(value);
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** A CSV document: the header row, then one row per record, lines ended by CRLF (RFC 4180). */
export function writeCsv(columns: readonly string[], rows: readonly (readonly (string | number | boolean | null | undefined)[])[]): string {
  return [columns.map(csvCell), ...rows.map((row) => row.map(csvCell))].map((cells) => `${cells.join(',')}\r\n`).join('');
}
