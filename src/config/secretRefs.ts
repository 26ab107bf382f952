// Secret references of the bundles file: a secret field may hold `{ file: PATH }` or
// `{ env: NAME }` instead of the value, so the file itself can be committed. The CLI
// resolves them on the machine that runs it; the server never reads files or variables
// named in a request.

import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SECRET_FIELDS, type CredentialType } from '../domain/types.ts';
import type { ConfigIssue } from './bundlesFile.ts';
import { closestName, isRecord } from './credentialSchemas.ts';

// A secret longer than this is a wrong path (a log, a binary) rather than a key or token.
const MAX_SECRET_FILE_BYTES = 1024 * 1024;

const REFERENCE_FORM = 'a secret reference is {file: PATH} or {env: NAME}';

export interface SecretRefOptions {
  /** Directory that relative `file` paths are resolved against: the bundles file's own directory. */
  baseDir: string;
  env: Record<string, string | undefined>;
}

/**
 * Returns a copy of the document with every `{ file }` and `{ env }` secret reference
 * replaced by the value it names, plus an issue for each reference that could not be
 * read. Unresolved references stay in the copy, so validation still rejects them.
 */
export function resolveSecretRefs(doc: unknown, options: SecretRefOptions): { doc: unknown; issues: ConfigIssue[] } {
  const copy = structuredClone(doc);
  const issues: ConfigIssue[] = [];
  if (!isRecord(copy) || !Array.isArray(copy['bundles'])) {
    return { doc: copy, issues };
  }

  for (const [bundleIndex, bundle] of copy['bundles'].entries()) {
    if (!isRecord(bundle) || !Array.isArray(bundle['credentials'])) continue;

    for (const [credentialIndex, credential] of bundle['credentials'].entries()) {
      if (!isRecord(credential)) continue;
      const type = credential['type'];
      // Validation reports an unknown type; without one the secret fields are unknown too.
      if (typeof type !== 'string' || !(type in SECRET_FIELDS)) continue;

      const secretFields = SECRET_FIELDS[type as CredentialType];
      for (const [field, value] of Object.entries(credential)) {
        if (!isRecord(value)) continue;
        const path = `bundles[${bundleIndex}].credentials[${credentialIndex}].${field}`;

        if (!secretFields.includes(field)) {
          if ('file' in value || 'env' in value) {
            issues.push({
              path,
              message: `"${field}" is not a secret field, so give its value inline; the secret fields of ${type} are ${secretFields.join(', ')}`,
            });
          }
          continue;
        }

        const resolved = resolveReference(value, options);
        if ('value' in resolved) {
          credential[field] = resolved.value;
        } else {
          issues.push({ path, message: resolved.problem });
        }
      }
    }
  }
  return { doc: copy, issues };
}

function resolveReference(reference: Record<string, unknown>, options: SecretRefOptions): { value: string } | { problem: string } {
  const keys = Object.keys(reference);
  if (keys.length !== 1) {
    return { problem: `${REFERENCE_FORM}, with exactly one key; got ${keys.length === 0 ? 'an empty object' : `keys ${keys.join(', ')}`}` };
  }

  const [key] = keys as [string];
  const target = reference[key];
  if (key !== 'file' && key !== 'env') {
    const suggestion = closestName(key, ['file', 'env']);
    return { problem: `unknown key "${key}"${suggestion ? `; did you mean "${suggestion}"?` : ''}; ${REFERENCE_FORM}` };
  }
  if (typeof target !== 'string' || target === '') {
    return { problem: `${key} must be a non-empty string; ${REFERENCE_FORM}` };
  }

  return key === 'file' ? readSecretFile(resolve(options.baseDir, target)) : readSecretVariable(target, options.env);
}

function readSecretFile(path: string): { value: string } | { problem: string } {
  let text: string;
  let descriptor: number | undefined;
  try {
    descriptor = openSync(path, 'r');
    const stats = fstatSync(descriptor);
    if (!stats.isFile()) {
      return { problem: `secret file "${path}" is not a regular file; give the path of the file that holds the secret` };
    }
    if (stats.size > MAX_SECRET_FILE_BYTES) {
      return { problem: `secret file "${path}" is ${stats.size} bytes, more than the ${MAX_SECRET_FILE_BYTES} a secret may have; check the path` };
    }
    text = readFileSync(descriptor, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    let reason = code ?? String(error);
    if (code === 'ENOENT') reason = 'not found';
    if (code === 'EACCES') reason = 'permission denied';
    return { problem: `cannot read secret file "${path}": ${reason}; check the path (relative paths start from the bundles file's directory)` };
  } finally {
    if (descriptor !== undefined) closeSync(descriptor);
  }

  // Editors and `echo` end files with a newline that is not part of the secret.
  const value = text.replace(/[\r\n]+$/, '');
  if (value === '') {
    return { problem: `secret file "${path}" is empty; write the secret into it` };
  }
  return { value };
}

function readSecretVariable(name: string, env: Record<string, string | undefined>): { value: string } | { problem: string } {
  const value = env[name];
  if (value === undefined) {
    return { problem: `environment variable ${name} is not set; export it before running agent-proxy, or use {file: PATH}` };
  }
  if (value === '') {
    return { problem: `environment variable ${name} is empty; set it to the secret value` };
  }
  return { value };
}
