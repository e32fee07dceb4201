import ipaddr from 'ipaddr.js';
import { invalidInput } from './errors.js';

/**
 * IP ranges (CIDR) for trusted IPs and policy conditions, through `ipaddr.js`. IPv4-mapped IPv6
 * addresses (::ffff:203.0.113.9, as a dual-stack socket reports IPv4 clients) match IPv4 ranges.
 */
export const MAX_TRUSTED_RANGES = 50;

/** The canonical form of a range (`203.0.113.0/24`, `2001:db8::/32`), or INVALID_INPUT naming `field`. */
export function normalizeRange(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalidInput(field, 'must be a list of CIDR ranges such as 203.0.113.0/24 or 2001:db8::/32');
  const text = value.trim();
  try {
    const [address, bits] = text.includes('/') ? ipaddr.parseCIDR(text) : (() => {
      const single = ipaddr.parse(text);
      return [single, single.kind() === 'ipv4' ? 32 : 128] as const;
    })();
    const network = networkOf(address, bits);
    return `${network.toString()}/${bits}`;
  } catch {
    throw invalidInput(field, `"${text.slice(0, 60)}" is not an IPv4 or IPv6 address or CIDR range`);
  }
}

/** The first address of the range (host bits cleared), so 10.1.2.3/8 is stored as 10.0.0.0/8. */
function networkOf(address: ipaddr.IPv4 | ipaddr.IPv6, bits: number): ipaddr.IPv4 | ipaddr.IPv6 {
  const bytes = address.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    bytes[i] = (bytes[i] ?? 0) & (0xff << (8 - keep)) & 0xff;
  }
  return ipaddr.fromByteArray(bytes);
}

function parseAddress(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  try {
    const address = ipaddr.parse(ip);
    return address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() ? (address as ipaddr.IPv6).toIPv4Address() : address;
  } catch {
    return undefined;
  }
}

/** The first of `ranges` that contains `ip`, or null. */
export function matchRange(ip: string | null | undefined, ranges: readonly string[]): string | null {
  if (ip === null || ip === undefined) return null;
  const address = parseAddress(ip);
  if (address === undefined) return null;
  for (const range of ranges) {
    try {
      const [network, bits] = ipaddr.parseCIDR(range);
      if (network.kind() === address.kind() && address.match(network, bits)) return range;
    } catch {
      // Stored ranges were normalized when saved; one that no longer parses matches nothing.
    }
  }
  return null;
}
