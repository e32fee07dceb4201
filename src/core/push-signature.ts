/**
 * What a push authenticator signs (SECURITY.md PUSH-01, PUSH-03), shared by the server and the
 * authenticators (the CLI one here, the PWA later). The device holds a P-256 key pair; the
 * server keeps only the public key (SPKI, base64). Signatures are ECDSA P-256 with SHA-256 in
 * the IEEE P1363 form WebCrypto produces (r ‖ s, 64 bytes), base64url-encoded.
 *
 * - An answer signs `countersign-push-answer-v1 \n challenge id \n decision \n typed number \n
 *   timestamp`: bound to one challenge, one decision and the number the user typed, so an
 *   approval for challenge A cannot be replayed on B, nor turned into another decision.
 * - A device request (fetching pending requests) signs `countersign-device-v1 \n device id \n
 *   METHOD \n path \n timestamp`, sent as `Authorization: Device <device id>.<timestamp>.<signature>`.
 * Timestamps are milliseconds since the epoch; the server accepts them within ±60 s of its clock.
 */
export type PushDecision = 'approve' | 'deny' | 'fraud';

export const PUSH_DECISIONS: readonly PushDecision[] = ['approve', 'deny', 'fraud'];

/** How far a signed timestamp may be from the server's clock. */
export const SIGNATURE_WINDOW_MS = 60_000;

export function pushAnswerMessage(challengeId: string, decision: PushDecision, number: string, timestamp: number): string {
  return ['countersign-push-answer-v1', challengeId, decision, number, String(timestamp)].join('\n');
}

export function deviceRequestMessage(deviceId: string, method: string, path: string, timestamp: number): string {
  return ['countersign-device-v1', deviceId, method.toUpperCase(), path, String(timestamp)].join('\n');
}
