// Conversions between the credential form's text inputs and the admin API's JSON.

import type { CredentialView } from './api.ts';

export function parseList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter(Boolean);
}

/** Parses one `Name: value` header per line. */
export function parseHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const colon = trimmed.indexOf(':');
    if (colon <= 0) {
      headers[trimmed] = '';
      continue;
    }
    headers[trimmed.slice(0, colon).trim()] = trimmed.slice(colon + 1).trim();
  }
  return headers;
}

export function formatHeaders(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join('\n');
}

/**
 * Parses one rule per line: words starting with `/` are path patterns and the others
 * are methods, so `GET /accounts/*` allows GET on `/accounts/<id>` only.
 */
export function parseRules(text: string): { methods?: string[]; paths?: string[] }[] {
  const rules: { methods?: string[]; paths?: string[] }[] = [];
  for (const line of text.split('\n')) {
    const words = parseList(line);
    if (words.length === 0) continue;
    const paths = words.filter((word) => word.startsWith('/'));
    const methods = words.filter((word) => !word.startsWith('/')).map((word) => word.toUpperCase());
    rules.push({ ...(methods.length > 0 ? { methods } : {}), ...(paths.length > 0 ? { paths } : {}) });
  }
  return rules;
}

export function formatRules(rules: CredentialView['rules']): string {
  return rules.map((rule) => [...(rule.methods ?? []), ...(rule.paths ?? [])].join(' ')).join('\n');
}

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return 'never';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** Shortens a fingerprint such as `SHA256:0123…` for a table cell, whose title attribute keeps it whole. */
export function shortFingerprint(fingerprint: string): string {
  const colon = fingerprint.indexOf(':');
  const digest = colon >= 0 ? fingerprint.slice(colon + 1) : fingerprint;
  const prefix = colon >= 0 ? fingerprint.slice(0, colon + 1) : '';
  return digest.length > 16 ? `${prefix}${digest.slice(0, 16)}…` : fingerprint;
}
