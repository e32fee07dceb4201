/**
 * The telephony channels (SPEC: "Channels … sit behind interfaces that flows call"). A provider
 * sends a text or places a call and says what it did; everything that happens afterwards (a
 * delivery report, a key pressed during a call, a text back from the phone) reaches the flows
 * through the provider's webhooks (Twilio) or through the local outbox (`countersign outbox`).
 *
 * Nothing here decides anything about a sign-in: the call's script is a `CallStep` that the
 * flows compute (core/call-script.ts) and a provider only renders (TwiML for Twilio).
 */

/** A text to send. `reference` is Countersign's id for it (the telephony log id); providers
 *  echo it in their callbacks so the answer finds its challenge. */
export interface OutgoingSms {
  readonly reference: string;
  readonly tenantId: string;
  /** E.164 */
  readonly to: string;
  /** Sender: the tenant's caller ID, or undefined for the provider's configured one. */
  readonly from: string | undefined;
  /** The message. It may hold a one-time code: providers never log it. */
  readonly text: string;
  readonly challengeId: string | null;
}

/** A call to place. What it says is asked of the flows when the callee answers. */
export interface OutgoingCall {
  readonly reference: string;
  readonly tenantId: string;
  readonly to: string;
  readonly from: string | undefined;
  readonly challengeId: string | null;
  /** The opening step (what the callee hears first), for providers that take it up front (the outbox). */
  readonly opening: CallStep;
}

/** What a provider did with a send or a call. */
export interface Dispatch {
  /** The provider's id for it (Twilio's Message or Call SID; the outbox row id). */
  readonly providerId: string;
  readonly status: 'queued' | 'sent' | 'ringing' | 'failed';
  /** Billable units (SMS segments; 1 for a call until its duration is known). */
  readonly units: number;
  /** Why it failed, in words safe to log (never the message text). */
  readonly error?: string;
}

export interface SmsChannel {
  /** `outbox`, `twilio`, `http`. */
  readonly provider: string;
  send(sms: OutgoingSms): Promise<Dispatch>;
}

export interface VoiceChannel {
  readonly provider: string;
  call(call: OutgoingCall): Promise<Dispatch>;
}

/** One thing the callee hears: a recorded audio file when the tenant uploaded one, else speech. */
export interface Prompt {
  /** Azure's message types. */
  readonly kind: 'greeting' | 'pin_greeting' | 'fraud_prompt' | 'fraud_confirmed' | 'success' | 'denied' | 'retry' | 'code';
  /** Text to speak (always present, also when audio is: it is what the outbox shows). */
  readonly text: string;
  /** Absolute URL of an uploaded audio file to play instead of speaking `text`. */
  readonly audioUrl?: string;
  /** BCP 47 language of the prompt, e.g. en-US. */
  readonly language: string;
}

/**
 * One step of a call: say the prompts, then either wait for keys (`gather`) or hang up.
 * Providers render it: TwiML `<Gather finishOnKey="#">` with `<Say>`/`<Play>` inside, then a
 * `<Redirect>` for the timeout; `<Say>`/`<Play>` then `<Hangup/>`.
 */
export interface CallStep {
  readonly prompts: readonly Prompt[];
  /** Wait for keys, ended by `#` (or by `maxDigits` keys), for `timeoutSeconds`. */
  readonly gather?: { readonly timeoutSeconds: number; readonly maxDigits: number };
  readonly hangup: boolean;
}
