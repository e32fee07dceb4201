import type { CallStep, Prompt } from '../types.js';

/**
 * Renders a call step (computed by the flows) as the TwiML document Twilio asks for while a call
 * is up: the prompts inside a `<Gather>` that posts the keys pressed to `urls.gather`, followed by a
 * `<Redirect>` to `urls.timeout` that Twilio follows when no key came; or the prompts then
 * `<Hangup/>`. Built by hand: the vocabulary is four elements, and every text and URL goes
 * through `escapeXml`, so nothing a tenant wrote can add markup to the script.
 */
const XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>';

export function renderCallStep(step: CallStep, urls: { readonly gather: string; readonly timeout: string }): string {
  const prompts = step.prompts.map(renderPrompt).join('');
  if (step.gather !== undefined) {
    const timeout = Math.max(1, Math.round(step.gather.timeoutSeconds));
    const numDigits = Number.isInteger(step.gather.maxDigits) && step.gather.maxDigits > 0 ? ` numDigits="${step.gather.maxDigits}"` : '';
    return (
      `${XML_DECLARATION}<Response>` +
      `<Gather input="dtmf" finishOnKey="#" actionOnEmptyResult="true" timeout="${timeout}"${numDigits} action="${escapeXml(urls.gather)}" method="POST">${prompts}</Gather>` +
      `<Redirect method="POST">${escapeXml(urls.timeout)}</Redirect>` +
      `</Response>`
    );
  }
  return `${XML_DECLARATION}<Response>${prompts}${step.hangup ? '<Hangup/>' : ''}</Response>`;
}

/** The answer to an incoming text that needs no reply. */
export function emptyMessagingResponse(): string {
  return `${XML_DECLARATION}<Response></Response>`;
}

function renderPrompt(prompt: Prompt): string {
  if (prompt.audioUrl !== undefined) return `<Play>${escapeXml(prompt.audioUrl)}</Play>`;
  return `<Say language="${escapeXml(prompt.language)}">${escapeXml(prompt.text)}</Say>`;
}

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Escapes the five XML specials and drops control characters XML 1.0 does not allow at all. */
function escapeXml(value: string): string {
  // eslint-disable-next-line no-control-regex -- removing exactly these characters is the point
  return value.replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '').replace(/[&<>"']/g, (c) => ENTITIES[c] ?? '');
}
