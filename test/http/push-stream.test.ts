import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceRequestMessage } from '../../src/core/push-signature.js';
import { activateDevice, signText } from '../support/device.js';
import { createTestApp, type TestApp } from '../support/harness.js';

/** The authenticator's live stream over a real socket: a push created for the user arrives at once. */
describe('authenticator live stream (Server-Sent Events)', () => {
  let t: TestApp;
  let base: string;
  beforeAll(async () => {
    t = await createTestApp();
    base = await t.app.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    // fetch keeps its sockets for reuse; they are not the server's to wait for.
    t.app.server.closeAllConnections();
    await t.close();
  });

  it('sends the pending requests at once, then a new push the moment it is created', async () => {
    expect((await t.admin('POST', '/v1/admin/users?tenant=default', { username: 'stream@contoso.com', mfa_state: 'enforced' })).status).toBe(201);
    const device = await activateDevice(t, 'stream@contoso.com');
    const timestamp = t.clock.ms();
    const signature = signText(device.privateKey, deviceRequestMessage(device.id, 'GET', '/v1/authenticator/stream', timestamp));
    const abort = new AbortController();
    const response = await fetch(`${base}/v1/authenticator/stream`, { headers: { authorization: `Device ${device.id}.${timestamp}.${signature}` }, signal: abort.signal });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    const nextEvent = async (): Promise<{ requests: { id: string }[] }> => {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split('\n').find((l) => l.startsWith('data: '));
          if (data !== undefined) return JSON.parse(data.slice(6));
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buffer += decoder.decode(value, { stream: true });
      }
    };
    expect((await nextEvent()).requests).toEqual([]);
    const started = Date.now();
    const created = await t.api('POST', '/v1/challenges', { username: 'stream@contoso.com', method: 'push', context: { app: 'VPN' } });
    const event = await nextEvent();
    expect(event.requests.map((r) => r.id)).toEqual([created.body.id]);
    expect(Date.now() - started).toBeLessThan(2000);
    // The stream stays open: a second push arrives too.
    const second = await t.api('POST', '/v1/challenges', { username: 'stream@contoso.com', method: 'push' });
    let ids: string[] = [];
    while (!ids.includes(second.body.id)) ids = (await nextEvent()).requests.map((r) => r.id);
    expect(ids.sort()).toEqual([created.body.id, second.body.id].sort());
    // A removed authenticator's open stream ends: it receives nothing more.
    expect((await t.admin('DELETE', `/v1/admin/users/stream@contoso.com/push/devices/${device.id}?tenant=default`)).status).toBe(204);
    await t.api('POST', '/v1/challenges', { username: 'stream@contoso.com', method: 'push' }).catch(() => undefined);
    let ended = false;
    for (;;) {
      const { done } = await reader.read();
      if (done) {
        ended = true;
        break;
      }
    }
    expect(ended).toBe(true);
    abort.abort();
    // A stream without a valid device signature is refused before it starts.
    expect((await fetch(`${base}/v1/authenticator/stream`, { headers: { authorization: `Device ${device.id}.${timestamp}.${'A'.repeat(86)}`, connection: 'close' } })).status).toBe(401);
  });
});
