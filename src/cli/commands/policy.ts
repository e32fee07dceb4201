import type { Command } from 'commander';
import { CountersignError, invalidInput } from '../../core/errors.js';
import {
  createNamedLocation,
  createPolicy,
  deleteNamedLocation,
  deletePolicy,
  getPolicy,
  listNamedLocations,
  listPolicies,
  reorderPolicies,
  updatePolicy,
  type ConditionsView,
  type PolicyInput,
  type PolicyView,
} from '../../flows/policies.js';
import { previewPreauth } from '../../flows/preauth.js';
import { addStoreOptions, CLI, print, readInputFile, tenantOf, withServices, type GlobalOptions } from '../context.js';

/**
 * `countersign policy …` and `countersign location …`: conditional access policies and named
 * locations, beside the admin API (`/v1/admin/policies`, `/v1/admin/named-locations`). Lists on
 * the command line are comma-separated; `--json-file FILE` (or `-` for stdin) gives a whole
 * policy as the API takes it, and options given beside it win. `policy update` changes only
 * the conditions named on the command line (`--clear users,locations` removes some).
 */
type ConditionOptions = {
  users?: string;
  excludeUsers?: string;
  groups?: string;
  excludeGroups?: string;
  applications?: string;
  excludeApplications?: string;
  client?: string;
  locations?: string;
  excludeLocations?: string;
};
type PolicyOptions = GlobalOptions &
  ConditionOptions & {
    tenant?: string;
    json?: boolean;
    grant?: string;
    /** false: --no-exclude-group (commander may also default it to true: not given). */
    excludeGroup?: string | boolean;
    position?: string;
    disabled?: boolean;
    enable?: boolean;
    disable?: boolean;
    name?: string;
    clear?: string;
    jsonFile?: string;
  };

const CONDITION_NAMES = ['users', 'groups', 'applications', 'client_types', 'locations'] as const;

function list(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').map((v) => v.trim()).filter((v) => v !== '');
}

function withConditionOptions(command: Command): Command {
  return command
    .option('--users <names>', 'only these usernames (comma-separated)')
    .option('--exclude-users <names>', 'never these usernames')
    .option('--groups <names>', 'only members of these groups')
    .option('--exclude-groups <names>', 'never members of these groups')
    .option('--applications <names>', 'only sign-ins through these applications (names or ids)')
    .option('--exclude-applications <names>', 'never through these applications')
    .option('--client <types>', 'only these client types: browser, legacy')
    .option('--locations <names>', 'only from these named locations, "trusted", or CIDR ranges')
    .option('--exclude-locations <names>', 'never from these')
    .option('--exclude-group <group>', 'the exclusion group: its members are never subject to the policy')
    .option('--position <n>', 'its place in the order, 1 = consulted first')
    .option('--json-file <file>', 'the policy as JSON, as the API takes it (- for stdin); options win over it')
    .option('--json', 'print JSON');
}

/** The conditions the options name (only those), merged over `base`. */
function conditionsFrom(options: ConditionOptions, base: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  const side = (name: string, include: string | undefined, exclude: string | undefined) => {
    if (include === undefined && exclude === undefined) return;
    const current = (out[name] ?? {}) as Record<string, unknown>;
    out[name] = { ...current, ...(include === undefined ? {} : { include: list(include) }), ...(exclude === undefined ? {} : { exclude: list(exclude) }) };
  };
  side('users', options.users, options.excludeUsers);
  side('groups', options.groups, options.excludeGroups);
  side('applications', options.applications, options.excludeApplications);
  side('locations', options.locations, options.excludeLocations);
  if (options.client !== undefined) out['client_types'] = list(options.client);
  return out;
}

function readJsonFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined) return {};
  let value: unknown;
  try {
    value = JSON.parse(readInputFile(path));
  } catch (error) {
    if (error instanceof CountersignError) throw error;
    throw invalidInput('--json-file', `${path} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidInput('--json-file', 'must hold a JSON object: {name, grant, conditions, …}');
  return value as Record<string, unknown>;
}

function position(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw invalidInput('position', 'must be a whole number from 1');
  return Number(value);
}

function describeConditions(c: ConditionsView): string {
  const parts: string[] = [];
  for (const name of CONDITION_NAMES) {
    const value = c[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) parts.push(`${name}=${value.join(',')}`);
    else {
      const { include, exclude } = value;
      if (include !== undefined) parts.push(`${name}=${include.join(',')}`);
      if (exclude !== undefined) parts.push(`${name}≠${exclude.join(',')}`);
    }
  }
  return parts.length === 0 ? 'every sign-in' : parts.join('; ');
}

function describePolicy(p: PolicyView): string {
  const exclusion = p.exclude_group === null ? '' : `  except group ${p.exclude_group}`;
  return `${p.position}. ${p.name}  ${p.grant}${p.enabled ? '' : '  (disabled)'}  when: ${describeConditions(p.conditions)}${exclusion}  [${p.id}]`;
}

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('conditional access policies: ordered rules preauth consults; the first that applies decides');

  addStoreOptions(policy.command('list').description('the tenant’s policies, in order').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action((options: PolicyOptions) =>
    withServices(options, async (services) => {
      const policies = await listPolicies(services, await tenantOf(services, options.tenant));
      print(options.json, policies, () => policies.map(describePolicy).join('\n') || '(no policies)');
    }),
  );

  addStoreOptions(
    withConditionOptions(
      policy
        .command('add [name]')
        .description('add a policy, e.g. `policy add "Block legacy" --grant block --client legacy --exclude-group break-glass`')
        .requiredOption('--tenant <tenant>', 'tenant id or name')
        .option('--grant <grant>', 'block | require_mfa | require_phishing_resistant | allow_without_mfa')
        .option('--disabled', 'add it turned off'),
    ),
  ).action((name: string | undefined, options: PolicyOptions) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      const file = readJsonFile(options.jsonFile);
      const input: PolicyInput = {
        ...file,
        ...(name === undefined ? {} : { name }),
        ...(options.grant === undefined ? {} : { grant: options.grant }),
        ...(typeof options.excludeGroup === 'string' ? { exclude_group: options.excludeGroup } : {}),
        ...(options.position === undefined ? {} : { position: position(options.position) }),
        ...(options.disabled === true ? { enabled: false } : {}),
        conditions: conditionsFrom(options, (file['conditions'] ?? {}) as Record<string, unknown>),
      };
      if (input.grant === undefined) throw invalidInput('grant', 'is required (--grant block | require_mfa | require_phishing_resistant | allow_without_mfa)');
      const created = await createPolicy(services, CLI, tenant, input);
      print(options.json, created, () => `added ${describePolicy(created)}`);
    }),
  );

  addStoreOptions(
    withConditionOptions(
      policy
        .command('update <policy>')
        .description('change a policy (by id or name): only what is given changes')
        .requiredOption('--tenant <tenant>', 'tenant id or name')
        .option('--name <name>', 'rename it')
        .option('--grant <grant>', 'block | require_mfa | require_phishing_resistant | allow_without_mfa')
        .option('--enable', 'turn it on')
        .option('--disable', 'turn it off')
        .option('--no-exclude-group', 'remove the exclusion group')
        .option('--clear <conditions>', `remove conditions (comma-separated: ${CONDITION_NAMES.join(', ')})`),
    ),
  ).action((ref: string, options: PolicyOptions) =>
    withServices(options, async (services) => {
      const tenant = await tenantOf(services, options.tenant);
      if (options.enable === true && options.disable === true) throw invalidInput('--enable', 'give --enable or --disable, not both');
      const file = readJsonFile(options.jsonFile);
      const current = await getPolicy(services, tenant, ref);
      const conditionsGiven = options.users ?? options.excludeUsers ?? options.groups ?? options.excludeGroups ?? options.applications ?? options.excludeApplications ?? options.client ?? options.locations ?? options.excludeLocations;
      const cleared = list(options.clear) ?? [];
      const unknown = cleared.find((c) => !(CONDITION_NAMES as readonly string[]).includes(c));
      if (unknown !== undefined) throw invalidInput('--clear', `"${unknown}" is not a condition (${CONDITION_NAMES.join(', ')})`);
      let conditions: Record<string, unknown> | undefined;
      if (conditionsGiven !== undefined || cleared.length > 0 || file['conditions'] !== undefined) {
        conditions = conditionsFrom(options, (file['conditions'] ?? current.conditions) as Record<string, unknown>);
        for (const name of cleared) delete conditions[name];
      }
      const input: PolicyInput = {
        ...file,
        ...(options.name === undefined ? {} : { name: options.name }),
        ...(options.grant === undefined ? {} : { grant: options.grant }),
        ...(options.excludeGroup === false ? { exclude_group: null } : typeof options.excludeGroup === 'string' ? { exclude_group: options.excludeGroup } : {}),
        ...(options.position === undefined ? {} : { position: position(options.position) }),
        ...(options.enable === true ? { enabled: true } : options.disable === true ? { enabled: false } : {}),
        ...(conditions === undefined ? {} : { conditions }),
      };
      const updated = await updatePolicy(services, CLI, tenant, current.id, input);
      print(options.json, updated, () => `updated ${describePolicy(updated)}`);
    }),
  );

  addStoreOptions(policy.command('remove <policy>').description('remove a policy (by id or name)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (ref: string, options: PolicyOptions) =>
      withServices(options, async (services) => {
        await deletePolicy(services, CLI, await tenantOf(services, options.tenant), ref);
        print(options.json, { removed: ref }, () => `removed policy ${ref}`);
      }),
  );

  addStoreOptions(
    policy.command('order <policies...>').description('put all the tenant’s policies in this order (ids or names), first consulted first').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON'),
  ).action((refs: string[], options: PolicyOptions) =>
    withServices(options, async (services) => {
      const policies = await reorderPolicies(services, CLI, await tenantOf(services, options.tenant), refs);
      print(options.json, policies, () => policies.map(describePolicy).join('\n'));
    }),
  );

  addStoreOptions(
    policy
      .command('evaluate <username>')
      .description('what preauth would answer if the user signed in now — changes nothing')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--application <app>', 'the application signing in (name or id)')
      .option('--client <type>', 'browser (default) or legacy')
      .option('--ip <ip>', 'the client IP address')
      .option('--json', 'print JSON: {result, reason, methods, trace}'),
  ).action((username: string, options: PolicyOptions & { application?: string; ip?: string }) =>
    withServices(options, async (services) => {
      const answer = await previewPreauth(services, await tenantOf(services, options.tenant), { username, application: options.application, client: options.client, ip: options.ip });
      print(options.json, answer, () => [`${answer.result} (${answer.reason})`, ...answer.trace.map((s) => `  ${s.decided === true ? '→' : ' '} ${s.check}: ${s.said}`)].join('\n'));
    }),
  );

  const location = program.command('location').description('named locations: IP ranges that policy conditions name');
  addStoreOptions(location.command('list').description('the tenant’s named locations').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action((options: PolicyOptions) =>
    withServices(options, async (services) => {
      const locations = await listNamedLocations(services, await tenantOf(services, options.tenant));
      print(options.json, locations, () => locations.map((l) => `${l.name}  ${l.ranges.join(',')}${l.trusted ? '  (trusted)' : ''}  [${l.id}]`).join('\n') || '(no named locations)');
    }),
  );
  addStoreOptions(
    location
      .command('add <name> <ranges>')
      .description('name IP ranges (comma-separated CIDRs, IPv4 or IPv6), e.g. `location add office 203.0.113.0/24,2001:db8:1::/48`')
      .requiredOption('--tenant <tenant>', 'tenant id or name')
      .option('--trusted', 'count the location as "trusted" in policy conditions')
      .option('--json', 'print JSON'),
  ).action((name: string, ranges: string, options: PolicyOptions & { trusted?: boolean }) =>
    withServices(options, async (services) => {
      const created = await createNamedLocation(services, CLI, await tenantOf(services, options.tenant), { name, ranges: list(ranges), trusted: options.trusted === true });
      print(options.json, created, () => `added named location ${created.name}: ${created.ranges.join(',')}${created.trusted ? ' (trusted)' : ''}`);
    }),
  );
  addStoreOptions(location.command('remove <location>').description('remove a named location no policy uses (by id or name)').requiredOption('--tenant <tenant>', 'tenant id or name').option('--json', 'print JSON')).action(
    (ref: string, options: PolicyOptions) =>
      withServices(options, async (services) => {
        await deleteNamedLocation(services, CLI, await tenantOf(services, options.tenant), ref);
        print(options.json, { removed: ref }, () => `removed named location ${ref}`);
      }),
  );
}
