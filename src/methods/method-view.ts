import type { MethodRow } from '../store/schema.js';

/**
 * What callers see of a method. Seeds, counters and key ids are never part of it; the HTTP
 * response schemas declare these fields only, so nothing else can leak by accident.
 */
export interface MethodView {
  id: string;
  type: 'totp' | 'oath';
  label: string;
  default: boolean;
  status: 'pending' | 'active';
  otp_kind: 'hotp' | 'totp';
  algorithm: string;
  digits: number;
  period: number | null;
  serial: string | null;
  manufacturer: string | null;
  model: string | null;
  created_at: string;
  last_used_at: string | null;
}

export function viewMethod(row: MethodRow): MethodView {
  return {
    id: row.id,
    type: row.type,
    label: row.label,
    default: row.is_default === 1,
    status: row.status,
    otp_kind: row.otp_kind,
    algorithm: row.algorithm,
    digits: row.digits,
    period: row.period,
    serial: row.serial,
    manufacturer: row.manufacturer,
    model: row.model,
    created_at: new Date(Number(row.created_at)).toISOString(),
    last_used_at: row.last_used_at === null ? null : new Date(Number(row.last_used_at)).toISOString(),
  };
}

/** The short form preauth lists (SPEC: `methods: [{id, type, label, default}]`). */
export function summarizeMethod(row: MethodRow): { id: string; type: string; label: string; default: boolean } {
  return { id: row.id, type: row.type, label: row.label, default: row.is_default === 1 };
}
