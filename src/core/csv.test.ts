import { describe, it, expect } from 'vitest';
import { readCsv, headerKey } from './csv.js';
import { CountersignError } from './errors.js';

const USERS = { headerFirstField: 'username' };

function thrown(run: () => unknown): { code: string; message: string; cause: unknown } {
  try {
    run();
  } catch (error) {
    if (error instanceof CountersignError) return { code: error.code, message: error.message, cause: error.cause };
    throw error;
  }
  throw new Error('expected a CountersignError');
}

describe('headerKey', () => {
  it('ignores case, spaces, underscores and hyphens', () => {
    expect(['Display Name', 'display_name', 'DISPLAY-NAME', ' display name '].map(headerKey)).toEqual([
      'displayname',
      'displayname',
      'displayname',
      'displayname',
    ]);
  });
});

describe('readCsv', () => {
  it('takes the first record as the header when its first field is the expected name', () => {
    const file = readCsv('User_Name, Display Name ,email\nalice,Alice A,alice@example.com\nbob\n', USERS);
    expect(file).toEqual({
      header: ['User_Name', 'Display Name', 'email'],
      rows: [
        { line: 2, fields: ['alice', 'Alice A', 'alice@example.com'] },
        { line: 3, fields: ['bob'] },
      ],
    });
  });

  it('reads every record as data when there is no header', () => {
    expect(readCsv('alice,enabled\nbob,enforced', USERS)).toEqual({
      header: undefined,
      rows: [
        { line: 1, fields: ['alice', 'enabled'] },
        { line: 2, fields: ['bob', 'enforced'] },
      ],
    });
  });

  it('numbers lines the same with CRLF, LF and lone CR', () => {
    const expected = [
      { line: 2, fields: ['alice', 'enabled'] },
      { line: 3, fields: ['bob', 'disabled'] },
    ];
    for (const eol of ['\r\n', '\n', '\r']) {
      const file = readCsv(['username,state', 'alice,enabled', 'bob,disabled', ''].join(eol), USERS);
      expect(file.header).toEqual(['username', 'state']);
      expect(file.rows).toEqual(expected);
    }
  });

  it('skips blank lines, lines of spaces and lines of bare commas, keeping physical line numbers', () => {
    const text = [
      '', // 1
      'username,state', // 2
      '', // 3
      'alice,enabled', // 4
      '   ', // 5
      ',', // 6
      '\t', // 7
      '  bob  , enforced ', // 8
      ',,,,', // 9
      '', // 10
      'carol,disabled', // 11
    ].join('\r\n');
    expect(readCsv(text, USERS)).toEqual({
      header: ['username', 'state'],
      rows: [
        { line: 4, fields: ['alice', 'enabled'] },
        { line: 8, fields: ['bob', 'enforced'] },
        { line: 11, fields: ['carol', 'disabled'] },
      ],
    });
  });

  it('numbers a record with a quoted line break by the line it starts on', () => {
    const text = 'username,display name\r\nalice,"Alice\r\nof Wonderland"\r\n\r\nbob,"B\r\n\r\nB"\r\ncarol,C\r\n';
    expect(readCsv(text, USERS).rows).toEqual([
      { line: 2, fields: ['alice', 'Alice\r\nof Wonderland'] },
      { line: 5, fields: ['bob', 'B\r\n\r\nB'] },
      { line: 8, fields: ['carol', 'C'] },
    ]);
    // The same on a file with LF line breaks, and one starting with the quoted record.
    expect(readCsv('"ali\nce",x\n\nbob,y\n', USERS).rows).toEqual([
      { line: 1, fields: ['ali\nce', 'x'] },
      { line: 4, fields: ['bob', 'y'] },
    ]);
  });

  it('counts lines after multi-byte characters correctly', () => {
    expect(readCsv('username,display name\nzoë,"Zoë\nÅström"\n日本,名前\n', USERS).rows).toEqual([
      { line: 2, fields: ['zoë', 'Zoë\nÅström'] },
      { line: 4, fields: ['日本', '名前'] },
    ]);
  });

  it('drops a BOM before the header and before data', () => {
    expect(readCsv('\uFEFFusername,state\r\nalice,enabled\r\n', USERS)).toEqual({
      header: ['username', 'state'],
      rows: [{ line: 2, fields: ['alice', 'enabled'] }],
    });
    expect(readCsv('\uFEFFalice,enabled\nbob,disabled', USERS)).toEqual({
      header: undefined,
      rows: [
        { line: 1, fields: ['alice', 'enabled'] },
        { line: 2, fields: ['bob', 'disabled'] },
      ],
    });
  });

  it('returns no rows for a header-only file', () => {
    expect(readCsv('username,state\n', USERS)).toEqual({ header: ['username', 'state'], rows: [] });
  });

  it('refuses an empty file, with or without a BOM and blank lines', () => {
    for (const text of ['', '\uFEFF', ' \r\n\r\n', '\uFEFF\n\t\n']) {
      expect(thrown(() => readCsv(text, USERS))).toEqual({ code: 'INVALID_FILE', message: 'the file is empty', cause: undefined });
    }
    expect(thrown(() => readCsv('', { ...USERS, fileNoun: 'token file' })).message).toBe('the token file is empty');
  });

  it('refuses a broken quote without quoting the field or attaching the parser error', () => {
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    const error = thrown(() => readCsv(`username,secret\nalice,"${secret}\nbob,x\n`, USERS));
    expect(error).toEqual({ code: 'INVALID_FILE', message: 'the file is not valid CSV: Quote Not Closed at line 3', cause: undefined });
    expect(error.message).not.toContain(secret);
  });

  it('refuses a quote opened inside a field without quoting the field', () => {
    const secret = 'GEZDGNBVGY3TQOJQ';
    const error = thrown(() => readCsv(`username,secret\nalice,${secret}"tail",x\n`, { ...USERS, fileNoun: 'token file' }));
    expect(error.code).toBe('INVALID_FILE');
    expect(error.message).toMatch(/^the token file is not valid CSV: Invalid Opening Quote at line 2$/);
    expect(error.message).not.toContain(secret);
    expect(error.cause).toBeUndefined();
  });
});
