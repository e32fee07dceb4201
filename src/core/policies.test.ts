import { describe, expect, it } from 'vitest';
import { CountersignError } from './errors.js';
import { evaluatePolicies, parseConditions, parseGrant, parseLocationName, parseLocationRanges, parseName, type PolicyRule, type PolicySubject } from './policies.js';

const subject: PolicySubject = {
  username: 'alice@contoso.com',
  groups: new Set(['sales', 'break-glass']),
  applicationId: 'app-vpn',
  client: 'browser',
  ip: '203.0.113.9',
  trustedRanges: ['198.51.100.0/24'],
  locations: new Map([
    ['office', ['203.0.113.0/24', '2001:db8:1::/48']],
    ['lab', ['192.0.2.0/28']],
  ]),
};
let n = 0;
const rule = (more: Partial<PolicyRule> = {}): PolicyRule => {
  n++;
  return { id: `id${n}`, name: `rule ${n}`, position: n, enabled: true, conditions: {}, excludeGroup: null, grant: 'require_mfa', ...more };
};
const outcome = (rules: PolicyRule[], s: Partial<PolicySubject> = {}) => evaluatePolicies(rules, { ...subject, ...s });
const applies = (r: Partial<PolicyRule>, s: Partial<PolicySubject> = {}) => outcome([rule(r)], s).matched !== null;
const why = (r: Partial<PolicyRule>, s: Partial<PolicySubject> = {}) => outcome([rule(r)], s).consulted[0]?.said.replace(/^policy "[^"]+" \(#\d+, [a-z_]+\): /, '');

function fieldOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CountersignError);
    expect((error as CountersignError).code).toBe('INVALID_INPUT');
    return (error as Error).message.split(':')[0] ?? '';
  }
  throw new Error('expected INVALID_INPUT');
}

describe('evaluatePolicies', () => {
  it('the first enabled policy that applies decides, in position order; later ones are not consulted; disabled ones are passed over', () => {
    const rules = [rule({ position: 3, grant: 'block' }), rule({ position: 1, enabled: false, grant: 'allow_without_mfa' }), rule({ position: 2, grant: 'require_mfa', conditions: { client_types: ['legacy'] } }), rule({ position: 4 })];
    const result = outcome(rules);
    expect(result.matched).toEqual({ id: rules[0]?.id, name: rules[0]?.name, grant: 'block' });
    expect(result.consulted.map((s) => [s.policy, s.applies])).toEqual([
      [rules[1]?.name, false],
      [rules[2]?.name, false],
      [rules[0]?.name, true],
    ]);
    expect(result.consulted[0]?.said).toMatch(/: disabled$/);
    expect(result.consulted[1]?.said).toMatch(/does not apply — a browser client is not among its client types \(legacy\)$/);
    expect(outcome([]).matched).toBeNull();
  });

  it('an absent condition matches every sign-in', () => {
    expect(applies({})).toBe(true);
    expect(applies({}, { applicationId: null, ip: null, groups: new Set() })).toBe(true);
  });

  it('users: include leaves out those not named, exclude leaves out those named (exclude wins)', () => {
    expect(applies({ conditions: { users: { include: ['alice@contoso.com'] } } })).toBe(true);
    expect(why({ conditions: { users: { include: ['bob@contoso.com'] } } })).toBe('does not apply — the user is not among its users');
    expect(why({ conditions: { users: { include: ['alice@contoso.com'], exclude: ['alice@contoso.com'] } } })).toBe('does not apply — the user is excluded by name');
  });

  it('groups: one group in common is enough to be included; any excluded group leaves the user out', () => {
    expect(applies({ conditions: { groups: { include: ['hr', 'sales'] } } })).toBe(true);
    expect(why({ conditions: { groups: { include: ['hr', 'finance'] } } })).toBe('does not apply — the user is in none of its groups (hr, finance)');
    expect(why({ conditions: { groups: { exclude: ['hr', 'sales'] } } })).toBe('does not apply — the user is in its excluded group "sales"');
  });

  it('the exclusion group: its members are never subject to the policy, whatever else matches', () => {
    expect(why({ grant: 'block', excludeGroup: 'break-glass', conditions: { users: { include: ['alice@contoso.com'] } } })).toBe('does not apply — the user is in its exclusion group "break-glass"');
    expect(applies({ excludeGroup: 'break-glass' }, { groups: new Set(['sales']) })).toBe(true);
  });

  it('applications by id; without an application, a policy naming applications does not apply but one excluding them does', () => {
    expect(applies({ conditions: { applications: { include: ['app-vpn'] } } })).toBe(true);
    expect(why({ conditions: { applications: { include: ['app-crm'] } } })).toBe('does not apply — the application is not among its applications');
    expect(why({ conditions: { applications: { exclude: ['app-vpn'] } } })).toBe('does not apply — the application is excluded');
    expect(why({ conditions: { applications: { include: ['app-vpn'] } } }, { applicationId: null })).toBe('does not apply — no application is given, and it names applications');
    expect(applies({ conditions: { applications: { exclude: ['app-vpn'] } } }, { applicationId: null })).toBe(true);
  });

  it('client types', () => {
    expect(applies({ conditions: { client_types: ['legacy'] } }, { client: 'legacy' })).toBe(true);
    expect(applies({ conditions: { client_types: ['browser', 'legacy'] } })).toBe(true);
  });

  it('locations: named locations, "trusted" and CIDR ranges, IPv4 and IPv6; no IP is in no location', () => {
    expect(applies({ conditions: { locations: { include: ['office'] } } })).toBe(true);
    expect(applies({ conditions: { locations: { include: ['office'] } } }, { ip: '2001:db8:1:ffff::1' })).toBe(true);
    expect(applies({ conditions: { locations: { include: ['office'] } } }, { ip: '2001:db8:2::1' })).toBe(false);
    // IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 client) is the IPv4 address.
    expect(applies({ conditions: { locations: { include: ['office'] } } }, { ip: '::ffff:203.0.113.77' })).toBe(true);
    expect(applies({ conditions: { locations: { include: ['trusted'] } } }, { ip: '198.51.100.20' })).toBe(true);
    expect(why({ conditions: { locations: { include: ['trusted', 'lab'] } } })).toBe('does not apply — 203.0.113.9 is in none of its locations (trusted, lab)');
    expect(applies({ conditions: { locations: { include: ['203.0.113.0/25'] } } })).toBe(true);
    expect(why({ conditions: { locations: { include: ['office'] } } }, { ip: null })).toBe('does not apply — no client IP is given, so the sign-in is in none of its locations');
    expect(why({ conditions: { locations: { exclude: ['lab', 'office'] } } })).toBe('does not apply — 203.0.113.9 is in its excluded location office (203.0.113.0/24)');
    // An exclude does not leave out a sign-in whose location is unknown.
    expect(applies({ conditions: { locations: { exclude: ['office'] } } }, { ip: null })).toBe(true);
    // A name no longer known matches nothing.
    expect(applies({ conditions: { locations: { include: ['gone'] } } })).toBe(false);
  });

  it('every condition must hold: one that does not is named', () => {
    const conditions = { users: { include: ['alice@contoso.com'] }, groups: { include: ['sales'] }, applications: { include: ['app-vpn'] }, client_types: ['browser' as const], locations: { include: ['office'] } };
    expect(applies({ conditions })).toBe(true);
    expect(why({ conditions }, { ip: '192.0.2.1' })).toMatch(/192\.0\.2\.1 is in none of its locations/);
  });
});

describe('policy validation', () => {
  it('normalizes: usernames lower-cased, ranges canonical, duplicates dropped, "trusted" any case', () => {
    expect(parseConditions({ users: { include: [' Alice@Contoso.com ', 'alice@contoso.com'] }, locations: { include: ['Trusted', '10.1.2.3/8', '2001:DB8::1', 'office'] }, client_types: ['legacy'] })).toEqual({
      users: { include: ['alice@contoso.com'] },
      locations: { include: ['trusted', '10.0.0.0/8', '2001:db8::1/128', 'office'] },
      client_types: ['legacy'],
    });
    expect(parseConditions(undefined)).toEqual({});
    expect(parseLocationRanges(['192.0.2.7', '2001:db8::/32', '192.0.2.7/32'])).toEqual(['192.0.2.7/32', '2001:db8::/32']);
  });

  it('bad input names the field at fault', () => {
    expect(fieldOf(() => parseConditions({ user: {} }))).toBe('conditions.user');
    expect(fieldOf(() => parseConditions({ users: { includes: ['a'] } }))).toBe('conditions.users.includes');
    expect(fieldOf(() => parseConditions({ users: { include: [] } }))).toBe('conditions.users.include');
    expect(fieldOf(() => parseConditions({ groups: { exclude: ['ok', ''] } }))).toBe('conditions.groups.exclude[1]');
    expect(fieldOf(() => parseConditions({ client_types: ['mobile'] }))).toBe('conditions.client_types[0]');
    expect(fieldOf(() => parseConditions({ locations: { include: ['10.0.0.0/33'] } }))).toBe('conditions.locations.include[0]');
    expect(fieldOf(() => parseConditions({ applications: { include: Array.from({ length: 101 }, (_, i) => `a${i}`) } }))).toBe('conditions.applications.include');
    expect(fieldOf(() => parseConditions([]))).toBe('conditions');
    expect(fieldOf(() => parseGrant('deny'))).toBe('grant');
    expect(fieldOf(() => parseName('a\r\nb'))).toBe('name');
    expect(fieldOf(() => parseName(''))).toBe('name');
    expect(fieldOf(() => parseLocationName('Trusted'))).toBe('name');
    expect(fieldOf(() => parseLocationName('10.0.0.1'))).toBe('name');
    expect(fieldOf(() => parseLocationRanges([]))).toBe('ranges');
    expect(fieldOf(() => parseLocationRanges(['192.0.2.0/24', 'nowhere']))).toBe('ranges[1]');
  });
});
