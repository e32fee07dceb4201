/**
 * What the benchmark parts share: a real `countersign serve` process on a fresh data directory
 * (its admin key read from its first output) and a JSON call to its API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startServer(dataDir: string, databaseUrl: string | undefined): Promise<{ child: ChildProcess; base: string; adminKey: string }> {
  const port = await freePort();
  const env: Record<string, string | undefined> = { ...process.env, COUNTERSIGN_LOG_LEVEL: 'warn', COUNTERSIGN_DATABASE_URL: databaseUrl };
  if (databaseUrl === undefined) delete env['COUNTERSIGN_DATABASE_URL'];
  const nodeArgs = (process.env['BENCH_SERVER_NODE_ARGS'] ?? '').split(' ').filter(Boolean); // e.g. --cpu-prof
  const child = spawn(process.execPath, [...nodeArgs, 'bin/countersign.js', 'serve', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const adminKey = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const key = /csa_[A-Za-z0-9_-]{43}/.exec(out)?.[0];
      if (key !== undefined && out.includes('serving on')) {
        clearTimeout(timer);
        resolve(key);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${String(code)}:\n${out}`)));
  });
  return { child, base: `http://127.0.0.1:${port}`, adminKey };
}

export async function call(base: string, key: string, method: string, path: string, body: string, type = 'application/json'): Promise<any> {
  const response = await fetch(base + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': type }, body });
  const json = await response.json();
  if (!response.ok) throw new Error(`${method} ${path} → ${response.status} ${JSON.stringify(json)}`);
  return json;
}

/** Stops a server started above and waits for its exit. */
export async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}
