import { randomUUID } from 'node:crypto';
import { DEFAULT_PROMPTS, type PromptKind } from '../core/call-script.js';
import { CountersignError, invalidInput, notFound } from '../core/errors.js';
import { actorOf, type Principal, type Services } from '../services.js';
import type { TenantRow } from '../store/schema.js';

/**
 * A tenant's own call prompts (Azure MFA's custom voice messages): per language and message
 * type, a text spoken by the provider's text-to-speech, or an uploaded audio file (MP3 or WAV,
 * at most 1 MB) played instead. Where a tenant set none, the built-in prompt is spoken.
 */
export const PROMPT_KINDS = Object.keys(DEFAULT_PROMPTS) as PromptKind[];
export const MAX_AUDIO_BYTES = 1024 * 1024;
export const AUDIO_TYPES = ['audio/mpeg', 'audio/wav', 'audio/x-wav'] as const;

export interface GreetingView {
  language: string;
  kind: PromptKind;
  text: string;
  audio: boolean;
  updated_at: string;
}

export function parseLanguage(value: unknown): string {
  if (typeof value !== 'string' || !/^[a-z]{2,3}(-[A-Z]{2})?$/.test(value)) throw invalidInput('language', 'must be a language tag such as en-US or fr-FR');
  return value;
}

export function parsePromptKind(value: unknown): PromptKind {
  const kind = PROMPT_KINDS.find((k) => k === value);
  if (kind === undefined) throw invalidInput('kind', `must be one of ${PROMPT_KINDS.join(', ')}`);
  return kind;
}

/** MP3 (an ID3 tag or an MPEG frame sync) or WAV (RIFF…WAVE): what the bytes are, not what the header says. */
function audioKind(audio: Buffer): 'audio/mpeg' | 'audio/wav' | undefined {
  if (audio.length >= 12 && audio.subarray(0, 4).toString('latin1') === 'RIFF' && audio.subarray(8, 12).toString('latin1') === 'WAVE') return 'audio/wav';
  if (audio.length >= 3 && audio.subarray(0, 3).toString('latin1') === 'ID3') return 'audio/mpeg';
  if (audio.length >= 2 && audio[0] === 0xff && ((audio[1] ?? 0) & 0xe0) === 0xe0) return 'audio/mpeg';
  return undefined;
}

export interface GreetingInput {
  text?: unknown;
  audio?: Buffer;
}

export async function setGreeting(services: Services, principal: Principal, tenant: TenantRow, language: unknown, kind: unknown, input: GreetingInput): Promise<GreetingView> {
  const lang = parseLanguage(language);
  const promptKind = parsePromptKind(kind);
  let audioType: string | null = null;
  if (input.audio !== undefined) {
    if (input.audio.length > MAX_AUDIO_BYTES) throw new CountersignError('PAYLOAD_TOO_LARGE', `audio: at most 1 MB (${MAX_AUDIO_BYTES} bytes)`);
    audioType = audioKind(input.audio) ?? null;
    if (audioType === null) throw new CountersignError('INVALID_FILE', 'audio: not an MP3 or WAV file');
  }
  const text = input.text === undefined && input.audio !== undefined ? `(recorded ${promptKind} message)` : input.text;
  // eslint-disable-next-line no-control-regex -- spoken and shown: no control characters
  if (typeof text !== 'string' || text.trim() === '' || text.length > 500 || /[\u0000-\u001f\u007f]/.test(text)) throw invalidInput('text', 'must be 1–500 characters');
  if (promptKind === 'code' && !text.includes('{code}')) throw invalidInput('text', 'the code prompt must say the code: include {code}');
  const now = services.clock().getTime();
  const values = { text, audio: input.audio === undefined ? null : input.audio.toString('base64'), audio_type: audioType, updated_at: now };
  await services.db
    .insertInto('phone_greetings')
    .values({ id: randomUUID(), tenant_id: tenant.id, language: lang, kind: promptKind, ...values })
    .onConflict((oc) => oc.columns(['tenant_id', 'language', 'kind']).doUpdateSet(values))
    .execute();
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'greeting.set', target: null, detail: { language: lang, kind: promptKind, audio: audioType !== null } });
  return { language: lang, kind: promptKind, text, audio: audioType !== null, updated_at: new Date(now).toISOString() };
}

export async function listGreetings(services: Services, tenant: TenantRow): Promise<GreetingView[]> {
  const rows = await services.db.selectFrom('phone_greetings').select(['language', 'kind', 'text', 'audio_type', 'updated_at']).where('tenant_id', '=', tenant.id).orderBy('language').orderBy('kind').execute();
  return rows.map((r) => ({ language: r.language, kind: r.kind as PromptKind, text: r.text, audio: r.audio_type !== null, updated_at: new Date(Number(r.updated_at)).toISOString() }));
}

export async function deleteGreeting(services: Services, principal: Principal, tenant: TenantRow, language: unknown, kind: unknown): Promise<void> {
  const lang = parseLanguage(language);
  const promptKind = parsePromptKind(kind);
  const result = await services.db.deleteFrom('phone_greetings').where('tenant_id', '=', tenant.id).where('language', '=', lang).where('kind', '=', promptKind).executeTakeFirst();
  if (result.numDeletedRows === 0n) throw notFound(`greeting ${lang} ${promptKind}`);
  await services.audit({ tenantId: tenant.id, actor: actorOf(principal), action: 'greeting.deleted', target: null, detail: { language: lang, kind: promptKind } });
}

/** An uploaded audio file by its unguessable id (served to the provider, which plays it in the call). */
export async function greetingAudio(services: Services, id: string): Promise<{ audio: Buffer; type: string }> {
  const row = await services.db.selectFrom('phone_greetings').select(['audio', 'audio_type']).where('id', '=', id).executeTakeFirst();
  if (row?.audio === null || row?.audio === undefined || row.audio_type === null) throw notFound('audio');
  return { audio: Buffer.from(row.audio, 'base64'), type: row.audio_type };
}

/** The tenant's prompts for one language, by kind: text, and the audio URL when a file was uploaded and the server has a public URL. */
export async function tenantPrompts(services: Services, tenantId: string, language: string): Promise<Map<string, { text: string; audioUrl?: string }>> {
  const rows = await services.db.selectFrom('phone_greetings').select(['id', 'kind', 'text', 'audio_type']).where('tenant_id', '=', tenantId).where('language', '=', language).execute();
  const base = services.config.publicUrl;
  return new Map(rows.map((r) => [r.kind, { text: r.text, ...(r.audio_type !== null && base !== undefined ? { audioUrl: `${base}/v1/telephony/audio/${r.id}` } : {}) }]));
}
