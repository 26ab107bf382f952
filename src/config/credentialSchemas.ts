// Zod schemas for the credentials of the bundles file, one per credential type, plus
// the field schemas the rest of the file shares. Messages are written for the person
// editing the file: each names the bad value (never a secret) and the fix.

import { z } from 'zod';
import { DEFAULT_JWT_ALGORITHM, detectProvider, validateJwtSettings, type JwtAssertionSettings, type JwtProvider } from '../credentials/jwtAssertion.ts';
import { isJwtSigningAlgorithm, JWT_ALGORITHM_KEYS, parsePrivateKey, PrivateKeyError, type ParsedPrivateKey } from '../credentials/privateKey.ts';
import { parseDuration } from './duration.ts';
import { SECRET_FIELDS, type CredentialType } from '../domain/types.ts';
import { HostPatternError, parseHostPattern } from '../policy/hostPattern.ts';
import { findSharedDomainUnderWildcard } from '../policy/multiTenantSuffixes.ts';
import { parseCidr } from '../policy/ipAddress.ts';

export const CREDENTIAL_TYPES = Object.keys(SECRET_FIELDS) as CredentialType[];

// RFC 9110 §5.6.2 token, the grammar of header field names and methods.
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE_FORBIDDEN = /[\r\n\0]/;
const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

// The proxy sets these per connection, so a fixed value would corrupt message framing.
const FRAMING_HEADERS = new Set([
  'connection',
  'content-length',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);


// ---------------------------------------------------------------- helpers

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Returns true for `{ file: ... }` or `{ env: ... }`, the secret reference forms of the bundles file. */
export function isSecretReference(value: unknown): value is Record<string, unknown> {
  return isRecord(value) && ('file' in value || 'env' in value);
}

/**
 * Returns the candidate that `input` most likely misspells or shortens: one it starts
 * with, or else the closest by edit distance if that is small for the input's length.
 */
export function closestName(input: string, candidates: readonly string[]): string | undefined {
  const lowerInput = input.toLowerCase();
  if (lowerInput.length >= 3) {
    const extended = candidates.find((candidate) => candidate.toLowerCase().startsWith(lowerInput));
    if (extended !== undefined) return extended;
  }

  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(lowerInput, candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const maxDistance = Math.max(1, Math.floor(input.length / 3));
  return bestDistance <= Math.min(maxDistance, 3) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/** Describes a value by its kind only, for messages about fields that may hold a secret. */
export function describeKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

/**
 * Builds an object schema that reports each unknown field as its own issue, with a
 * suggestion when the name is close to a known one. The check runs even when other
 * fields are invalid, so one run lists every mistake.
 */
export function knownFieldsObject<Shape extends z.ZodRawShape>(shape: Shape) {
  const knownFields = Object.keys(shape);
  return z.looseObject(shape).superRefine(
    (value, context) => {
      for (const field of Object.keys(value)) {
        if (!knownFields.includes(field)) {
          const suggestion = closestName(field, knownFields);
          const hint = suggestion ? `; did you mean "${suggestion}"?` : `; known fields: ${knownFields.join(', ')}`;
          context.addIssue({ code: 'custom', path: [field], message: `unknown field "${field}"${hint}` });
        }
      }
    },
    { when: (payload) => isRecord(payload.value) },
  );
}

function nonEmptyText(expectedValue: string) {
  return z.string().min(1, { error: `empty string; give ${expectedValue}` });
}

function optionalText(expectedValue: string) {
  return z.string().min(1, { error: `empty string; give ${expectedValue}, or remove the field` }).optional();
}

// ---------------------------------------------------------------- shared fields

export function nameField(kind: 'bundle' | 'credential') {
  return z.string().superRefine((name, context) => {
    if (!NAME.test(name)) {
      context.addIssue({
        code: 'custom',
        message: `${JSON.stringify(name)} is not a valid ${kind} name; use 1 to 64 lowercase letters, digits, "-" or "_", starting with a letter or digit`,
      });
    }
  });
}

export const hostPatternField = z.string().superRefine((pattern, context) => {
  try {
    parseHostPattern(pattern);
  } catch (error) {
    if (!(error instanceof HostPatternError)) throw error;
    context.addIssue({ code: 'custom', message: error.message });
  }
});

export const cidrField = z.string().superRefine((cidr, context) => {
  try {
    parseCidr(cidr);
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    context.addIssue({ code: 'custom', message: error.message });
  }
});

function secretField() {
  return z
    .string({
      error: (issue) =>
        isSecretReference(issue.input)
          ? 'unresolved secret reference; {file: PATH} and {env: NAME} are read by the agent-proxy CLI (apply -f, serve --config), so give the value inline here'
          : issue.input === undefined
            ? undefined
            : `expected the secret as a string, {file: PATH} or {env: NAME}; got ${describeKind(issue.input)}`,
    })
    .min(1, { error: 'empty secret; give the value inline, as {file: PATH} or as {env: NAME}' });
}

/** Builds the schema of a secret that the proxy writes into a header or query string verbatim. */
function headerSecretField() {
  return secretField().refine((value) => !HEADER_VALUE_FORBIDDEN.test(value), {
    error: 'the secret contains a line break or NUL, which cannot be sent in a header; remove it (a file is read with its trailing newline trimmed)',
  });
}

function headerValueField() {
  return z.string().refine((value) => !HEADER_VALUE_FORBIDDEN.test(value), {
    error: 'header value contains CR, LF or NUL, which would split or end the header; remove them',
  });
}

/** Returns why a header name may not be set by a credential, or undefined when it may. */
function reservedHeaderReason(name: string, use: 'extraHeaders' | 'headerName'): string | undefined {
  const lower = name.toLowerCase();
  if (lower === 'proxy-authorization' || lower.startsWith('x-agent-proxy-')) {
    return 'the proxy owns Proxy-Authorization and X-Agent-Proxy-* headers and strips them';
  }
  if (lower === 'host') {
    return 'the proxy sets Host from the request target';
  }
  if (FRAMING_HEADERS.has(lower)) {
    return 'the proxy sets connection and message-framing headers itself';
  }
  if (use === 'extraHeaders' && lower === 'authorization') {
    return 'the credential sets Authorization; for a custom scheme use an api_key credential with headerName: Authorization and a prefix';
  }
  if (use === 'extraHeaders' && lower === 'cookie') {
    return 'a fixed Cookie header would replace the cookies the client sends';
  }
  return undefined;
}

function headerNameProblem(name: string, use: 'extraHeaders' | 'headerName'): string | undefined {
  if (!TOKEN.test(name)) {
    return `${JSON.stringify(name)} is not a valid header name; use letters, digits and !#$%&'*+.^_\`|~- only`;
  }
  const reason = reservedHeaderReason(name, use);
  return reason ? `header "${name}" cannot be set here: ${reason}` : undefined;
}

const extraHeadersField = z.record(z.string(), headerValueField()).superRefine(
  (headers, context) => {
    const seen = new Map<string, string>();
    for (const name of Object.keys(headers)) {
      const problem = headerNameProblem(name, 'extraHeaders');
      if (problem) {
        context.addIssue({ code: 'custom', path: [name], message: problem });
      }
      const earlier = seen.get(name.toLowerCase());
      if (earlier !== undefined) {
        context.addIssue({
          code: 'custom',
          path: [name],
          message: `header "${name}" is also given as "${earlier}"; header names are case-insensitive, so keep one`,
        });
      }
      seen.set(name.toLowerCase(), name);
    }
  },
  { when: (payload) => isRecord(payload.value) },
);

function checkRuleMethod(method: string, context: z.RefinementCtx): void {
  if (!TOKEN.test(method)) {
    context.addIssue({ code: 'custom', message: `${JSON.stringify(method)} is not an HTTP method; use a name such as GET or POST` });
  } else if (method !== method.toUpperCase()) {
    context.addIssue({
      code: 'custom',
      message: `${JSON.stringify(method)} is not upper case; HTTP methods are case-sensitive, so write "${method.toUpperCase()}"`,
    });
  }
}

function checkRulePath(path: string, context: z.RefinementCtx): void {
  const problem = !path.startsWith('/')
    ? `path ${JSON.stringify(path)} does not start with "/"; write it as "/${path}"`
    : /[?#\s]/.test(path)
      ? `path ${JSON.stringify(path)} contains "?", "#" or whitespace; give the path alone, without query or fragment`
      : wildcardProblem(path);
  if (problem) {
    context.addIssue({ code: 'custom', message: problem });
  }
}

function wildcardProblem(path: string): string | undefined {
  const segments = path.split('/');
  for (const [index, segment] of segments.entries()) {
    if (segment === '**' && index !== segments.length - 1) {
      return `path ${JSON.stringify(path)} has "**" before its last segment; "**" matches the rest of the path, so it must come last`;
    }
    if (segment.includes('*') && segment !== '*' && segment !== '**') {
      return `path ${JSON.stringify(path)} has "*" inside the segment "${segment}"; "*" matches a whole segment (/a/*/b), so use it alone between slashes`;
    }
  }
  return undefined;
}

const ruleField = knownFieldsObject({
  methods: z.array(z.string().superRefine(checkRuleMethod)).min(1, { error: 'empty list; give methods such as [GET] or remove the field' }).optional(),
  paths: z.array(z.string().superRefine(checkRulePath)).min(1, { error: 'empty list; give paths such as ["/v1/*"] or remove the field' }).optional(),
}).superRefine(
  (rule, context) => {
    if (rule.methods === undefined && rule.paths === undefined) {
      context.addIssue({ code: 'custom', message: 'empty rule; give methods, paths or both' });
    }
  },
  { when: (payload) => isRecord(payload.value) },
);

// ---------------------------------------------------------------- credentials

// A URL that test-connection calls with the credential to show who it runs as.
const probeUrlField = z.string().superRefine((text, context) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    context.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a URL; give an https URL on one of the allowed websites` });
    return;
  }
  if (url.protocol !== 'https:') {
    context.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not https; credentials are only sent over https` });
  }
});

const commonCredentialFields = {
  name: nameField('credential'),
  allowedWebsites: z
    .array(hostPatternField)
    .min(1, { error: 'empty list, so the credential could never be used; give the host names it may be sent to' }),
  access: z.enum(['read', 'read_write'], { error: (issue) => (issue.input === undefined ? undefined : `${JSON.stringify(issue.input)} is not an access level; use read or read_write`) }).default('read_write'),
  rules: z.array(ruleField).default(() => []),
  extraHeaders: extraHeadersField.default(() => ({})),
  unsafeAllowSharedDomainWildcard: z.boolean({ error: 'expected true or false' }).optional(),
};

/**
 * Rejects a wildcard that covers a domain many customers share (`*.atlassian.net`), since
 * the credential would then be sent to every other customer's host under it.
 */
function checkSharedDomainWildcards(credential: Record<string, unknown>, context: z.RefinementCtx): void {
  if (credential['unsafeAllowSharedDomainWildcard'] === true || !Array.isArray(credential['allowedWebsites'])) return;
  for (const [index, website] of credential['allowedWebsites'].entries()) {
    if (typeof website !== 'string') continue;
    let pattern;
    try {
      pattern = parseHostPattern(website);
    } catch {
      continue;
    }
    const shared = pattern.wildcard ? findSharedDomainUnderWildcard(pattern.domain) : null;
    if (shared !== null) {
      context.addIssue({
        code: 'custom',
        path: ['allowedWebsites', index],
        message:
          `"${website}" covers every host under ${shared}, a domain that many customers share, so the credential would also be sent to other customers' hosts, whose owners could read it. ` +
          `List your own tenant's host instead, such as "yourcompany.${shared}", or set unsafeAllowSharedDomainWildcard: true if every host under it is yours.`,
      });
    }
  }
}

function checkRulesAgainstAccess(credential: Record<string, unknown>, context: z.RefinementCtx): void {
  if (credential['access'] !== 'read' || !Array.isArray(credential['rules'])) return;
  for (const [ruleIndex, rule] of credential['rules'].entries()) {
    if (!isRecord(rule) || !Array.isArray(rule['methods'])) continue;
    for (const [methodIndex, method] of rule['methods'].entries()) {
      if (typeof method === 'string' && TOKEN.test(method) && method === method.toUpperCase() && !READ_METHODS.has(method)) {
        context.addIssue({
          code: 'custom',
          path: ['rules', ruleIndex, 'methods', methodIndex],
          message: `${method} is never allowed because access is read (GET, HEAD, OPTIONS only); set access: read_write or remove ${method}`,
        });
      }
    }
  }
}

/** Adds the checks every credential type shares to a credential object schema. */
function credentialSchema<Shape extends z.ZodRawShape>(shape: Shape) {
  return knownFieldsObject({ ...commonCredentialFields, probeUrl: probeUrlField.optional(), allowClientCookies: z.boolean().optional(), ...shape })
    .superRefine(checkRulesAgainstAccess, { when: (payload) => isRecord(payload.value) })
    .superRefine(checkSharedDomainWildcards, { when: (payload) => isRecord(payload.value) });
}

function tokenUrlField() {
  return z.string().superRefine((text, context) => {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      context.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a URL; give the token endpoint, such as https://login.example.com/oauth2/token` });
      return;
    }
    if (url.protocol === 'http:' && !LOOPBACK_HOSTS.has(url.hostname)) {
      context.addIssue({
        code: 'custom',
        message: `${JSON.stringify(text)} uses http; token requests carry secrets, so use https (http is accepted only for 127.0.0.1, ::1 and localhost)`,
      });
    } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      context.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not an https URL; give the token endpoint as https://…` });
    } else if (url.username !== '' || url.password !== '') {
      context.addIssue({ code: 'custom', message: 'the token URL contains a user name or password; remove them and use the clientId and secret fields' });
    } else if (url.hash !== '') {
      context.addIssue({ code: 'custom', message: `${JSON.stringify(text)} has a fragment (#…); remove it` });
    }
  });
}

const bearerTokenSchema = credentialSchema({
  type: z.literal('bearer_token'),
  token: headerSecretField(),
});

const apiKeySchema = credentialSchema({
  type: z.literal('api_key'),
  headerName: z
    .string()
    .superRefine((name, context) => {
      const problem = headerNameProblem(name, 'headerName');
      if (problem) context.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  queryParam: z
    .string()
    .regex(/^[A-Za-z0-9._~-]+$/, {
      error: (issue) => `invalid query parameter name ${JSON.stringify(issue.input)}; use letters, digits and . _ ~ - only`,
    })
    .optional(),
  prefix: headerValueField().optional(),
  value: headerSecretField(),
}).superRefine(
  (credential, context) => {
    const hasHeader = credential.headerName !== undefined;
    const hasQuery = credential.queryParam !== undefined;
    if (hasHeader === hasQuery) {
      context.addIssue({
        code: 'custom',
        message: hasHeader
          ? 'both headerName and queryParam are set; an api_key goes in one place, so keep one'
          : 'missing headerName or queryParam; give the header (headerName: X-Api-Key) or query parameter (queryParam: api_key) that carries the key',
      });
    }
  },
  { when: (payload) => isRecord(payload.value) },
);

const basicAuthSchema = credentialSchema({
  type: z.literal('basic_auth'),
  username: z.string().refine((username) => !username.includes(':'), {
    error: 'the username contains ":", which Basic authentication cannot carry (RFC 7617); check the value',
  }),
  password: secretField(),
});

// Provider rules and token lifetime, shared by the OAuth types.
const oauthCommonFields = {
  provider: z
    .enum(['salesforce', 'google', 'generic'], {
      error: (issue) => (issue.input === undefined ? undefined : `${JSON.stringify(issue.input)} is not a provider; use salesforce, google or generic`),
    })
    .optional(),
  maxTokenAge: z
    .string()
    .superRefine((text, context) => {
      try {
        const milliseconds = parseDuration(text);
        if (milliseconds < 60_000 || milliseconds > 24 * 3_600_000) {
          context.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is out of range; give a duration from 1m to 24h, such as 30m` });
        }
      } catch (error) {
        context.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .optional(),
};

const jwtBearerSchema = credentialSchema({
  ...oauthCommonFields,
  type: z.literal('oauth2_jwt_bearer'),
  issuer: nonEmptyText('the issuer (iss), such as the Connected App consumer key'),
  subject: optionalText('the subject (sub), such as the integration user name'),
  privateKey: secretField(),
  tokenUrl: tokenUrlField(),
  audience: optionalText('the audience (aud)'),
  scope: optionalText('the scope'),
  algorithm: z
    .string()
    .refine((algorithm) => isJwtSigningAlgorithm(algorithm), {
      error: (issue) => `${JSON.stringify(issue.input)} is not a supported algorithm; use one of ${Object.keys(JWT_ALGORITHM_KEYS).join(', ')}`,
    })
    .optional(),
  keyId: optionalText('the key id (kid)'),
}).superRefine(checkPrivateKey, { when: (payload) => isRecord(payload.value) });

function checkPrivateKey(credential: Record<string, unknown>, context: z.RefinementCtx): void {
  const pem = credential['privateKey'];
  const algorithm = credential['algorithm'] ?? DEFAULT_JWT_ALGORITHM;
  if (typeof pem !== 'string' || pem === '' || typeof algorithm !== 'string' || !isJwtSigningAlgorithm(algorithm)) return;

  let key: ParsedPrivateKey;
  try {
    key = parsePrivateKey(pem, { algorithm });
  } catch (error) {
    if (!(error instanceof PrivateKeyError)) throw error;
    context.addIssue({ code: 'custom', path: ['privateKey'], message: error.message });
    return;
  }

  const tokenUrl = credential['tokenUrl'];
  const issuer = credential['issuer'];
  if (typeof tokenUrl !== 'string' || typeof issuer !== 'string' || !URL.canParse(tokenUrl)) return;
  const settings: JwtAssertionSettings = {
    issuer,
    tokenUrl,
    algorithm,
    ...(typeof credential['subject'] === 'string' ? { subject: credential['subject'] } : {}),
    ...(typeof credential['audience'] === 'string' ? { audience: credential['audience'] } : {}),
    ...(typeof credential['scope'] === 'string' ? { scope: credential['scope'] } : {}),
  };
  const provider = typeof credential['provider'] === 'string' ? (credential['provider'] as JwtProvider) : detectProvider(tokenUrl);
  for (const problem of validateJwtSettings(settings, key, provider)) {
    context.addIssue({ code: 'custom', message: problem });
  }
}

const clientCredentialsSchema = credentialSchema({
  ...oauthCommonFields,
  type: z.literal('oauth2_client_credentials'),
  clientId: nonEmptyText('the OAuth client id'),
  clientSecret: secretField(),
  tokenUrl: tokenUrlField(),
  scope: optionalText('the scope'),
  audience: optionalText('the audience'),
  clientAuthMethod: z
    .enum(['basic', 'body'], { error: (issue) => (issue.input === undefined ? undefined : `${JSON.stringify(issue.input)} is not a client authentication method; use basic or body`) })
    .optional(),
});

const refreshTokenSchema = credentialSchema({
  ...oauthCommonFields,
  type: z.literal('oauth2_refresh_token'),
  clientId: nonEmptyText('the OAuth client id'),
  clientSecret: secretField(),
  refreshToken: secretField(),
  tokenUrl: tokenUrlField(),
});

export const credentialField = z.discriminatedUnion(
  'type',
  [bearerTokenSchema, apiKeySchema, basicAuthSchema, jwtBearerSchema, clientCredentialsSchema, refreshTokenSchema],
  {
    error: (issue) => {
      if (issue.code !== 'invalid_union') return undefined;
      const type = isRecord(issue.input) ? issue.input['type'] : undefined;
      const validTypes = `valid types: ${CREDENTIAL_TYPES.join(', ')}`;
      if (type === undefined) return `missing required field "type"; ${validTypes}`;
      if (typeof type !== 'string') return `expected the type as a string, got ${describeKind(type)}; ${validTypes}`;
      const suggestion = closestName(type, CREDENTIAL_TYPES);
      return `unknown credential type ${JSON.stringify(type)}${suggestion ? `; did you mean "${suggestion}"?` : ''}; ${validTypes}`;
    },
  },
);

export type ParsedCredential = z.output<typeof credentialField>;
