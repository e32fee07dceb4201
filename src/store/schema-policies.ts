/** Table types of migration 008-policies: conditional access policies and named locations (issue 5 item 9). */
export interface PolicyTables {
  policies: PoliciesTable;
  named_locations: NamedLocationsTable;
}

export interface PoliciesTable {
  id: string;
  tenant_id: string;
  /** Unique per tenant. */
  name: string;
  /** 1, 2, 3 … within the tenant: the order preauth consults policies in. */
  position: number;
  /** 0/1 */
  enabled: number;
  /** core/policies.ts PolicyConditions as JSON, validated on every write. */
  conditions: string;
  /** The exclusion group: its members are never subject to the policy. */
  exclude_group: string | null;
  /** block | require_mfa | require_phishing_resistant | allow_without_mfa */
  grant_control: string;
  created_at: number;
  updated_at: number;
}

export interface NamedLocationsTable {
  id: string;
  tenant_id: string;
  /** Unique per tenant; never `trusted` (that word names the trusted locations in conditions). */
  name: string;
  /** Normalized CIDR ranges as a JSON list. */
  ranges: string;
  /** 0/1: counted as `trusted` in policy conditions, with the tenant's trusted IPs. */
  trusted: number;
  created_at: number;
}
