import nodemailer from 'nodemailer';
import type { EmailChannel, OutgoingEmail } from './types.js';

/**
 * E-mail through an SMTP server with nodemailer: `smtp://user:pass@host:587` (STARTTLS when the
 * server offers it) or `smtps://…:465`. One pooled transport for the process. The URL holds the
 * server's password: it is never logged, and an error is reported by its SMTP code and
 * response, not by the URL.
 */
export function createSmtpChannel(smtpUrl: string, from: string, options: { tls?: { rejectUnauthorized?: boolean } } = {}): EmailChannel {
  const transport = nodemailer.createTransport(smtpUrl, { from, ...(options.tls === undefined ? {} : { tls: options.tls }) });
  return {
    provider: 'smtp',
    async send(email: OutgoingEmail) {
      try {
        const info = await transport.sendMail({ from, to: email.to, subject: email.subject, text: email.text, headers: { 'X-Countersign-Reference': email.reference } });
        return { providerId: typeof info.messageId === 'string' ? info.messageId : email.reference };
      } catch (error) {
        throw new Error(smtpFailure(error));
      }
    },
    close: () => {
      transport.close();
      return Promise.resolve();
    },
  };
}

/** What went wrong, without the URL or credentials: the SMTP reply code and text, or the socket error's code. */
export function smtpFailure(error: unknown): string {
  const e = error as { responseCode?: unknown; response?: unknown; code?: unknown; message?: unknown };
  if (typeof e.responseCode === 'number') return `SMTP ${e.responseCode}: ${(typeof e.response === 'string' ? e.response : '').replace(/\s+/g, ' ').slice(0, 200)}`;
  if (typeof e.code === 'string') return `SMTP connection failed (${e.code})`;
  return 'SMTP send failed';
}
