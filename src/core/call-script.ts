/**
 * The phone call of Azure MFA as a pure state machine: what the callee hears, and what the keys
 * they press mean. Providers only render its steps (TwiML for Twilio, a transcript in the
 * outbox); the flows feed it keys and act on its outcome.
 *
 * Modes (tenant setting `voice_mode`):
 * - `press`: the greeting, then `#` approves.
 * - `pin`: the PIN greeting, then the user's PIN and `#` (the flow checks the PIN and says
 *   whether it matched: `pinMatches`).
 * - `code`: the call reads a one-time code out twice and hangs up; the code is typed into the
 *   application, which answers the challenge like a text message code.
 * In `press` and `pin` mode, the fraud code then `#` (Azure: `0#`) asks to confirm a fraud
 * report, and `1` confirms it. A wrong key or no key gets one retry; then the call ends.
 */
export type VoiceMode = 'press' | 'pin' | 'code';

export interface CallState {
  readonly stage: 'main' | 'fraud_confirm' | 'done';
  readonly retries: number;
}

export type CallOutcome =
  | { readonly status: 'approved' }
  | { readonly status: 'fraud' }
  | { readonly status: 'denied'; readonly reason: 'wrong_pin' | 'wrong_key' | 'not_confirmed' }
  | { readonly status: 'failed'; readonly reason: 'timeout' };

export type PromptKind = 'greeting' | 'pin_greeting' | 'fraud_prompt' | 'fraud_confirmed' | 'success' | 'denied' | 'retry' | 'code';

/** What to say, by kind; the flow supplies the tenant's texts (or the built-in ones). */
export interface CallStepPlan {
  readonly say: readonly { readonly kind: PromptKind; readonly text?: string }[];
  /** Wait for keys ended by `#` (maxDigits keys at most). */
  readonly gather?: { readonly maxDigits: number };
  readonly hangup: boolean;
}

export interface CallTransition {
  readonly state: CallState;
  readonly step: CallStepPlan;
  /** Set when the call decided the challenge. */
  readonly outcome?: CallOutcome;
}

export const MAX_RETRIES = 1;
const PIN_MAX_DIGITS = 16;

/** The built-in prompts (Azure's message types), used where a tenant set none. */
export const DEFAULT_PROMPTS: Readonly<Record<PromptKind, string>> = {
  greeting: 'This is a sign-in verification call. If you are signing in, press the pound key to finish. To report fraud, press {fraud_code} then pound.',
  pin_greeting: 'This is a sign-in verification call. Enter your PIN followed by the pound key. To report fraud, press {fraud_code} then pound.',
  fraud_prompt: 'You are about to report this sign-in as fraud. Press 1 to confirm.',
  fraud_confirmed: 'Thank you. The sign-in was denied and the fraud was reported.',
  success: 'Thank you. You are signed in. Goodbye.',
  denied: 'The sign-in was denied. Goodbye.',
  retry: 'Sorry, that was not right. Please try again.',
  code: 'Your verification code is {code}. Again, your code is {code}. Goodbye.',
};

export const INITIAL_CALL_STATE: CallState = { stage: 'main', retries: 0 };

function mainStep(mode: VoiceMode): CallStepPlan {
  if (mode === 'code') return { say: [{ kind: 'code' }], hangup: true };
  return { say: [{ kind: mode === 'pin' ? 'pin_greeting' : 'greeting' }], gather: { maxDigits: mode === 'pin' ? PIN_MAX_DIGITS : 5 }, hangup: false };
}

/** What the callee hears when they answer. */
export function answerCall(mode: VoiceMode): CallTransition {
  return { state: mode === 'code' ? { stage: 'done', retries: 0 } : INITIAL_CALL_STATE, step: mainStep(mode) };
}

export interface KeysInput {
  readonly mode: VoiceMode;
  readonly fraudEnabled: boolean;
  readonly fraudCode: string;
  /** In PIN mode: whether the keys before `#` are the user's PIN (the flow checks it). */
  readonly pinMatches?: boolean;
}

/**
 * The keys pressed at a gather: digits, `*`, and `#` when the gather ended on it; an empty
 * string when nothing was pressed before the timeout.
 */
export function pressKeys(state: CallState, keys: string, input: KeysInput): CallTransition {
  const done = (outcome: CallOutcome, kind: PromptKind): CallTransition => ({ state: { stage: 'done', retries: state.retries }, step: { say: [{ kind }], hangup: true }, outcome });
  if (state.stage === 'done' || input.mode === 'code') return { state, step: { say: [], hangup: true } };
  if (state.stage === 'fraud_confirm') {
    return keys.startsWith('1') ? done({ status: 'fraud' }, 'fraud_confirmed') : done({ status: 'denied', reason: 'not_confirmed' }, 'denied');
  }
  const entered = keys.endsWith('#') ? keys.slice(0, -1) : undefined;
  if (entered !== undefined && input.fraudEnabled && entered === input.fraudCode) {
    return { state: { stage: 'fraud_confirm', retries: state.retries }, step: { say: [{ kind: 'fraud_prompt' }], gather: { maxDigits: 1 }, hangup: false } };
  }
  if (entered !== undefined) {
    if (input.mode === 'press' && entered === '') return done({ status: 'approved' }, 'success');
    if (input.mode === 'pin' && entered !== '' && input.pinMatches === true) return done({ status: 'approved' }, 'success');
  }
  if (state.retries >= MAX_RETRIES) {
    if (keys === '') return done({ status: 'failed', reason: 'timeout' }, 'denied');
    return done({ status: 'denied', reason: input.mode === 'pin' ? 'wrong_pin' : 'wrong_key' }, 'denied');
  }
  const again = mainStep(input.mode);
  return { state: { stage: 'main', retries: state.retries + 1 }, step: { ...again, say: [{ kind: 'retry' }, ...again.say] } };
}

export function parseCallState(json: string | null): CallState {
  if (json === null) return INITIAL_CALL_STATE;
  try {
    const value = JSON.parse(json) as Partial<CallState>;
    const stage = value.stage === 'fraud_confirm' || value.stage === 'done' ? value.stage : 'main';
    return { stage, retries: typeof value.retries === 'number' ? value.retries : 0 };
  } catch {
    return INITIAL_CALL_STATE;
  }
}
