/**
 * Small readers over fast-xml-parser's output for the PSKC parser (parse-pskc.ts): children,
 * single elements, text, attributes, and strict base64. A repeated element where one is expected
 * is refused rather than guessed.
 */
export type XmlNode = Record<string, unknown>;

/** A reason to refuse one KeyPackage (the rest of the file still imports). */
export class Refusal extends Error {}

export function isNode(value: unknown): value is XmlNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function children(node: unknown, name: string): unknown[] {
  if (!isNode(node)) return [];
  const value = node[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** The single child `name`; a repeated one is ambiguous and refused rather than guessed. */
export function one(node: unknown, name: string): XmlNode | string | undefined {
  const found = children(node, name);
  if (found.length > 1) throw new Refusal(`${name} appears more than once`);
  const value = found[0];
  return isNode(value) || typeof value === 'string' ? value : undefined;
}

export function text(node: unknown): string | null {
  if (typeof node === 'string') return node;
  if (isNode(node)) return typeof node['#text'] === 'string' ? node['#text'] : '';
  return null;
}

export function attr(node: unknown, name: string): string | null {
  if (!isNode(node)) return null;
  const value = node[`@_${name}`];
  return typeof value === 'string' ? value.trim() : null;
}

export function nonEmpty(value: string | null): string | null {
  return value === null || value === '' ? null : value;
}

export function parseCount(value: string | null): number | null {
  if (value === null || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

/** Strict RFC 4648 §4 base64, whitespace allowed (XML wraps long values). */
export function decodeBase64(value: string | null): Buffer | null {
  if (value === null) return null;
  const compact = value.replace(/\s+/g, '');
  if (compact === '' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(compact)) return null;
  return Buffer.from(compact, 'base64');
}

export function hasElement(value: unknown, name: string): boolean {
  if (Array.isArray(value)) return value.some((item) => hasElement(item, name));
  if (!isNode(value)) return false;
  return Object.entries(value).some(([key, child]) => key === name || hasElement(child, name));
}
