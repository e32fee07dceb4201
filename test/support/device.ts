import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { deviceRequestMessage, pushAnswerMessage, type PushDecision } from '../../src/core/push-signature.js';
import type { TestApp } from './harness.js';

/** An authenticator played in the test: a P-256 key pair, activation, signed requests and answers. */
export interface TestDevice {
  id: string;
  privateKey: KeyObject;
  publicKey: string;
  pending(): Promise<{ status: number; body: any }>;
  answer(challengeId: string, decision: PushDecision, number?: string, options?: { timestamp?: number; signWith?: KeyObject; signedFor?: string }): Promise<{ status: number; body: any }>;
}

export function newKeyPair(): { privateKey: KeyObject; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64') };
}

export function signText(key: KeyObject, message: string): string {
  return sign('sha256', Buffer.from(message, 'utf8'), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
}

/** Activates a new device for `username` through the admin API and the device API. */
export async function activateDevice(t: TestApp, username: string, tenant = 'default'): Promise<TestDevice> {
  const started = await t.admin('POST', `/v1/admin/users/${username}/push/activation?tenant=${tenant}`);
  if (started.status !== 201) throw new Error(`activation: ${JSON.stringify(started.body)}`);
  const code = new URL(started.body.activation_url).hash.replace('#activate=', '') ?? '';
  const { privateKey, publicKey } = newKeyPair();
  const activated = await t.app.inject({ method: 'POST', url: '/v1/authenticator/activate', payload: { code, public_key: publicKey, name: 'test phone' } });
  if (activated.statusCode !== 201) throw new Error(`activate: ${activated.body}`);
  const id: string = activated.json().device_id;
  const json = (r: { statusCode: number; body: string }) => ({ status: r.statusCode, body: r.body === '' ? undefined : JSON.parse(r.body) });
  return {
    id,
    privateKey,
    publicKey,
    pending: async () => {
      const timestamp = t.clock.ms();
      const signature = signText(privateKey, deviceRequestMessage(id, 'GET', '/v1/authenticator/pending', timestamp));
      return json(await t.app.inject({ method: 'GET', url: '/v1/authenticator/pending', headers: { authorization: `Device ${id}.${timestamp}.${signature}` } }));
    },
    answer: async (challengeId, decision, number = '', options = {}) => {
      const timestamp = options.timestamp ?? t.clock.ms();
      const signature = signText(options.signWith ?? privateKey, pushAnswerMessage(options.signedFor ?? challengeId, decision, number, timestamp));
      return json(await t.app.inject({ method: 'POST', url: `/v1/authenticator/challenges/${challengeId}/answer`, payload: { device_id: id, decision, number, timestamp, signature } }));
    },
  };
}
