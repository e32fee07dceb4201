/**
 * Tells a PSKC document (XML, RFC 6030) from an Azure MFA token CSV. A CSV header starts with
 * "upn", never with "<", so the first non-space character decides; a UTF-8 BOM is skipped.
 */
export function detectTokenFormat(text: string): 'csv' | 'pskc' {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  return body.trimStart().startsWith('<') ? 'pskc' : 'csv';
}
