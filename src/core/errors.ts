/**
 * The one error type of Countersign. Codes form a closed union that callers can `switch` on
 * (after jose's `ERR_*` codes); each transport maps them once: HTTP to a status and
 * `{error: {code, message}}`, the CLI to exit code 1 and a one-line message.
 */
export const ERROR_STATUS = {
  INVALID_INPUT: 400,
  INVALID_FILE: 400,
  UNAUTHORIZED: 401,
  /** A signed device request from an authenticator that is not (or no longer) activated: removed by an administrator. */
  DEVICE_UNKNOWN: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  LIMIT_REACHED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  CONFIG_INVALID: 500,
  KEY_UNAVAILABLE: 500,
  INTERNAL: 500,
  /** A telephony or push provider refused or could not be reached. */
  PROVIDER_FAILED: 502,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class CountersignError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** For 429: seconds the caller should wait. */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CountersignError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryAfter = options?.retryAfter;
  }
}

/** Bad input naming the field at fault, e.g. `invalidInput('username', 'is required')`. */
export function invalidInput(field: string, problem: string): CountersignError {
  return new CountersignError('INVALID_INPUT', `${field}: ${problem}`);
}

export function notFound(what: string): CountersignError {
  return new CountersignError('NOT_FOUND', `${what} not found`);
}
