/**
 * The server's clock as this device sees it. Signed requests carry a timestamp the server
 * accepts only within 60 s of its own time, and a request's expiry is the server's time: both
 * use serverNow(), this device's clock corrected by the offset learned from the `Date` header
 * of the server's answers (same-origin fetch responses expose it). The header has a resolution
 * of one second, so an offset under two seconds is taken as none.
 */

/** Offsets smaller than this are the header's rounding, not a wrong clock. */
const NOISE_MS = 2000;
/** An offset this large is worth telling the user about when the server still refuses. */
export const LARGE_SKEW_MS = 30_000;

let offsetMs = 0;

/** The server's time now, in ms since the epoch. */
export function serverNow(): number {
  return Date.now() + offsetMs;
}

/** How far the server's clock is ahead of this device's (negative: behind). */
export function clockOffsetMs(): number {
  return offsetMs;
}

/** Learns the offset from an answer of the server (any status); a missing or odd header changes nothing. */
export function learnServerTime(response: Response): void {
  const header = response.headers.get('date');
  const server = header === null ? NaN : Date.parse(header);
  if (!Number.isFinite(server)) return;
  // The header is truncated to the second: the server's time was within [server, server + 1 s).
  const estimate = server + 500 - Date.now();
  offsetMs = Math.abs(estimate) < NOISE_MS ? 0 : Math.round(estimate);
}

/** "This device's clock is off by N s…" when the offset is large, else null. */
export function skewMessage(): string | null {
  if (Math.abs(offsetMs) < LARGE_SKEW_MS) return null;
  const seconds = Math.round(Math.abs(offsetMs) / 1000);
  return `This device's clock is off by ${seconds} s (${offsetMs > 0 ? 'behind' : 'ahead of'} the server's): turn on automatic date and time, then reopen the app.`;
}
