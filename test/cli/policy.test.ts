import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCliSession, type CliSession } from '../support/cli.js';
import type { TestStoreLocation } from '../support/harness.js';

/**
 * `countersign policy …` and `countersign location …` as an administrator runs them: the real
 * CLI in a child process on an embedded data directory.
 */
const SLOW = 300_000;

let session: CliSession;
let location: TestStoreLocation;
const cli = (args: string[]) => session.cli(args);

async function ok(args: string[]): Promise<string> {
  const result = await cli(args);
  expect(result.stderr, args.join(' ')).toBe('');
  expect(result.code, args.join(' ')).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  session = await openCliSession();
  location = session.location;
});
afterAll(async () => {
  await session.close();
});

describe('countersign policy / location (CLI)', () => {
  it(
    'adds named locations and policies, lists them in order, updates, evaluates without side effects, reorders and removes; bad input names the field',
    async () => {
      await ok(['tenant', 'create', 'acme']);
      await ok(['app', 'create', '--tenant', 'acme', 'mail']);
      await ok(['user', 'add', '--tenant', 'acme', 'bob@acme.com', '--state', 'enforced', '--group', 'sales']);
      await ok(['user', 'add', '--tenant', 'acme', 'root@acme.com', '--state', 'enforced', '--group', 'break-glass']);

      const office = JSON.parse(await ok(['location', 'add', '--tenant', 'acme', 'office', '203.0.113.7/24,2001:DB8:1::/48', '--trusted', '--json']));
      expect(office).toMatchObject({ name: 'office', ranges: ['203.0.113.0/24', '2001:db8:1::/48'], trusted: true });
      expect(await ok(['location', 'list', '--tenant', 'acme'])).toMatch(/^office {2}203\.0\.113\.0\/24,2001:db8:1::\/48 {2}\(trusted\)/);

      const block = JSON.parse(await ok(['policy', 'add', '--tenant', 'acme', 'Block legacy', '--grant', 'block', '--client', 'legacy', '--exclude-group', 'break-glass', '--json']));
      expect(block).toMatchObject({ name: 'Block legacy', position: 1, grant: 'block', exclude_group: 'break-glass', conditions: { client_types: ['legacy'] }, enabled: true });
      const file = join(location.dataDir, 'policy.json');
      writeFileSync(file, JSON.stringify({ name: 'Office mail', grant: 'allow_without_mfa', conditions: { applications: { include: ['mail'] } } }));
      const fromFile = JSON.parse(await ok(['policy', 'add', '--tenant', 'acme', '--json-file', file, '--locations', 'office', '--position', '1', '--json']));
      expect(fromFile).toMatchObject({ name: 'Office mail', position: 1, grant: 'allow_without_mfa', conditions: { applications: { include: ['mail'] }, locations: { include: ['office'] } } });
      const listed = await ok(['policy', 'list', '--tenant', 'acme']);
      expect(listed.split('\n')[0]).toMatch(/^1\. Office mail {2}allow_without_mfa {2}when: applications=mail; locations=office {2}\[/);
      expect(listed.split('\n')[1]).toMatch(/^2\. Block legacy {2}block {2}when: client_types=legacy {2}except group break-glass {2}\[/);

      // Evaluate: the legacy sign-in of bob is blocked, root's is not; nothing is written.
      const evaluated = JSON.parse(await ok(['policy', 'evaluate', '--tenant', 'acme', 'bob@acme.com', '--client', 'legacy', '--json']));
      expect(evaluated).toMatchObject({ result: 'deny', reason: 'policy_block' });
      expect(evaluated.trace.filter((s: any) => s.check === 'policy').map((s: any) => s.said)).toEqual([
        'policy "Office mail" (#1, allow_without_mfa): does not apply — no application is given, and it names applications',
        'policy "Block legacy" (#2, block): applies: the sign-in is blocked',
      ]);
      const human = await ok(['policy', 'evaluate', '--tenant', 'acme', 'root@acme.com', '--client', 'legacy', '--application', 'mail', '--ip', '2001:db8:1::5']);
      expect(human.split('\n')[0]).toBe('allow (policy_allow)');
      expect(human).toContain('→ policy: policy "Office mail" (#1, allow_without_mfa): applies: the sign-in needs no second factor');

      // Update changes only what is named: here the users condition, the grant and the place.
      const updated = JSON.parse(await ok(['policy', 'update', '--tenant', 'acme', 'Block legacy', '--users', 'bob@acme.com', '--grant', 'require_mfa', '--position', '1', '--no-exclude-group', '--json']));
      expect(updated).toMatchObject({ position: 1, grant: 'require_mfa', exclude_group: null, conditions: { client_types: ['legacy'], users: { include: ['bob@acme.com'] } } });
      const cleared = JSON.parse(await ok(['policy', 'update', '--tenant', 'acme', updated.id, '--clear', 'users', '--disable', '--json']));
      expect(cleared).toMatchObject({ enabled: false, conditions: { client_types: ['legacy'] } });
      expect(cleared.conditions.users).toBeUndefined();

      const reordered = JSON.parse(await ok(['policy', 'order', '--tenant', 'acme', 'Office mail', 'Block legacy', '--json']));
      expect(reordered.map((p: any) => p.name)).toEqual(['Office mail', 'Block legacy']);

      // Bad input: the field is named, exit code 1, nothing changes.
      const badGroup = await cli(['policy', 'add', '--tenant', 'acme', 'X', '--grant', 'block', '--groups', 'nobody']);
      expect(badGroup.code).toBe(1);
      expect(badGroup.stderr).toMatch(/^countersign: conditions\.groups\.include\[0\]: no user is in group "nobody" in tenant acme\n$/);
      expect((await cli(['policy', 'add', '--tenant', 'acme', 'X'])).stderr).toMatch(/^countersign: grant: is required/);
      expect((await cli(['policy', 'add', '--tenant', 'acme', 'X', '--grant', 'block', '--locations', '10.0.0.0/33'])).stderr).toMatch(/^countersign: conditions\.locations\.include\[0\]: /);
      const inUse = await cli(['location', 'remove', '--tenant', 'acme', 'office']);
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toMatch(/named location "office" is used by policy "Office mail"/);

      await ok(['policy', 'remove', '--tenant', 'acme', 'Office mail']);
      await ok(['location', 'remove', '--tenant', 'acme', 'office']);
      expect(JSON.parse(await ok(['policy', 'list', '--tenant', 'acme', '--json'])).map((p: any) => `${p.position}:${p.name}`)).toEqual(['1:Block legacy']);
      expect(await ok(['location', 'list', '--tenant', 'acme'])).toBe('(no named locations)\n');

      // Every change was audited, as the CLI.
      const audit = JSON.parse(await ok(['audit', 'list', '--tenant', 'acme', '--limit', '100', '--json'])) as { action: string; actor: string }[];
      const actions = audit.filter((r) => /^(policy|named_location)\./.test(r.action));
      expect(actions.map((r) => r.action).sort()).toEqual(['named_location.created', 'named_location.deleted', 'policy.created', 'policy.created', 'policy.deleted', 'policy.reordered', 'policy.updated', 'policy.updated']);
      expect(new Set(actions.map((r) => r.actor))).toEqual(new Set(['cli']));
      // The evaluations above recorded no sign-in.
      expect(audit.some((r) => r.action.startsWith('preauth.'))).toBe(false);
    },
    SLOW,
  );
});
