import type { Command } from 'commander';
import { createServices } from '../../app.js';
import { bootstrapFirstAdmin } from '../../flows/api-keys.js';
import { startEventDispatcher } from '../../flows/events.js';
import { forgetServerUrl, recordServerUrl } from '../../flows/push.js';
import { addStoreOptions, configFrom, type GlobalOptions } from '../context.js';

interface ServeOptions extends GlobalOptions {
  port?: string;
  host?: string;
}

export function registerServeCommand(program: Command): void {
  addStoreOptions(
    program
      .command('serve')
      .description('run the server (embedded SQLite in the data directory unless COUNTERSIGN_DATABASE_URL is set)')
      .option('--port <port>', 'port to listen on (default 8080)')
      .option('--host <host>', 'address to listen on (default 0.0.0.0)'),
  ).action(async (options: ServeOptions) => {
    const config = configFrom(options, { port: options.port, host: options.host });
    const services = await createServices(config);
    const first = await bootstrapFirstAdmin(services);
    // Loaded here, not at the top: every other command starts faster without the HTTP stack.
    const { buildServer } = await import('../../http/server.js');
    const app = await buildServer(services);
    const address = await app.listen({ port: config.port, host: config.host });
    // Webhooks and e-mail: events handed out after each commit (flows/events.ts).
    const dispatcher = startEventDispatcher(services);
    const port = new URL(address).port;
    const local = `http://localhost:${port}`;
    const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host.includes(':') ? `[${config.host}]` : config.host;
    await recordServerUrl(services, `http://${host}:${port}`);
    const where = config.host === '0.0.0.0' || config.host === '::' ? `http://${config.host}:${port} (all interfaces)` : address;
    process.stdout.write(
      [
        '',
        `Countersign is serving on ${where} (store: ${services.store.dialect}, ${services.store.location})`,
        `  API documentation: ${local}/docs`,
        ...(first === undefined
          ? []
          : [
              '',
              `First start: created tenant "${first.tenant}" and the first administrator API key.`,
              'It is shown now and never again — keep it somewhere safe:',
              '',
              `  ${first.apiKey}`,
              '',
              `  Try it: curl -H "Authorization: Bearer ${first.apiKey}" ${local}/v1/admin/tenants`,
            ]),
        '',
      ].join('\n'),
    );
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void app
          .close()
          .then(() => dispatcher.stop())
          .then(() => forgetServerUrl(services))
          .then(() => services.store.close())
          .finally(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  });
}
