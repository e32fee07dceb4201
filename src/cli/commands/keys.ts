import type { Command } from 'commander';
import { CountersignError } from '../../core/errors.js';
import { addKek, removeKek } from '../../store/keyring.js';
import { createDataKey, rewrapDataKeys } from '../../store/secret-box.js';
import { addStoreOptions, print, withServices, type GlobalOptions } from '../context.js';

type Options = GlobalOptions & { json?: boolean };

export function registerKeyCommands(program: Command): void {
  const keys = program.command('keys').description('encryption keys of the seeds at rest');

  addStoreOptions(keys.command('list').description('list key-encryption keys and data keys').option('--json', 'print JSON')).action((options: Options) =>
    withServices(options, async (services) => {
      const dataKeys = await services.db.selectFrom('data_keys').select(['id', 'kek_id', 'active', 'created_at']).orderBy('created_at').execute();
      const result = {
        source: services.keyring.source,
        key_encryption_keys: services.keyring.keks.map((k, i) => ({ id: k.id, active: i === services.keyring.keks.length - 1 })),
        data_keys: dataKeys.map((d) => ({ id: d.id, kek_id: d.kek_id, active: d.active === 1, created_at: new Date(Number(d.created_at)).toISOString() })),
      };
      print(options.json, result, () =>
        [
          `key-encryption keys (${result.source}):`,
          ...result.key_encryption_keys.map((k) => `  ${k.id}${k.active ? '  (active)' : ''}`),
          'data keys:',
          ...result.data_keys.map((d) => `  ${d.id}  wrapped by ${d.kek_id}${d.active ? '  (active)' : ''}`),
        ].join('\n'),
      );
    }),
  );

  addStoreOptions(keys.command('rotate').description('add a new key-encryption key, re-wrap every data key under it, and start a new data key').option('--json', 'print JSON')).action(
    (options: Options) =>
      withServices(options, async (services) => {
        const keyring = await addKek(services.keyring, services.clock());
        const rewrapped = await rewrapDataKeys(services.db, keyring);
        const dataKey = await createDataKey(services.db, keyring, services.clock());
        const kek = keyring.keks.at(-1)?.id ?? '';
        await services.audit({ tenantId: null, actor: 'cli', action: 'keys.rotated', target: kek, detail: { rewrapped, data_key: dataKey } });
        print(options.json, { key_encryption_key: kek, data_key: dataKey, rewrapped }, () => `new key-encryption key ${kek}; ${rewrapped} data keys re-wrapped; new seeds use data key ${dataKey}`);
      }),
  );

  addStoreOptions(keys.command('rewrap').description('re-wrap every data key under the active key-encryption key (after changing COUNTERSIGN_KEYS)').option('--json', 'print JSON')).action(
    (options: Options) =>
      withServices(options, async (services) => {
        const rewrapped = await rewrapDataKeys(services.db, services.keyring);
        await services.audit({ tenantId: null, actor: 'cli', action: 'keys.rewrapped', target: null, detail: { rewrapped } });
        print(options.json, { rewrapped }, () => `${rewrapped} data keys re-wrapped`);
      }),
  );

  addStoreOptions(keys.command('retire <kek-id>').description('remove an old key-encryption key that no data key uses any more')).action((id: string, options: Options) =>
    withServices(options, async (services) => {
      const inUse = await services.db.selectFrom('data_keys').select('id').where('kek_id', '=', id).executeTakeFirst();
      if (inUse !== undefined) throw new CountersignError('CONFLICT', `key ${id} still wraps data key ${inUse.id}: run \`countersign keys rewrap\` first`);
      await removeKek(services.keyring, id);
      await services.audit({ tenantId: null, actor: 'cli', action: 'keys.retired', target: id });
      print(false, null, () => `retired key-encryption key ${id}`);
    }),
  );
}
