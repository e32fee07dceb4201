/** An e-mail to send: plain text, one recipient. */
export interface OutgoingEmail {
  tenantId: string;
  to: string;
  subject: string;
  text: string;
  /** Countersign's reference (the notification id), kept beside the message where the provider allows. */
  reference: string;
}

/**
 * Where e-mail goes: an SMTP server (`email.smtp_url`, through nodemailer) or, by default, the
 * local outbox, where a person reads it (`countersign outbox list`, GET /v1/admin/outbox).
 */
export interface EmailChannel {
  readonly provider: 'smtp' | 'outbox';
  /** Resolves when the message was accepted (by the SMTP server, or stored); throws when it was not. */
  send(email: OutgoingEmail): Promise<{ providerId: string }>;
  close(): Promise<void>;
}
