// The inline result of Test connection: who the call ran as, or the provider's error
// with the hint that says what to change.

import type { TestConnectionResult } from '../api.ts';
import { formatDateTime } from '../credentialBody.ts';

/** Picks the most readable identity from a probe answer (Salesforce and OpenID userinfo, GitHub, Slack, …). */
function identityName(result: TestConnectionResult): string | null {
  const identity = result.probe?.identity ?? {};
  for (const key of ['preferred_username', 'username', 'email', 'login', 'user', 'name', 'sub', 'user_id']) {
    const value = identity[key];
    if (typeof value === 'string' && value) return value;
  }
  return result.token?.subject ?? null;
}

export function TestConnectionResultView({ result }: { result: TestConnectionResult }) {
  if (!result.ok || result.error) {
    const error = result.error;
    return (
      <div className="test-result test-failed" role="status">
        <p>
          <strong>Test connection failed.</strong> {error?.message}
        </p>
        {error?.providerError && (
          <p>
            Provider error: <code>{error.providerError}</code>
            {error.providerErrorDescription ? ` — ${error.providerErrorDescription}` : ''}
          </p>
        )}
        {error?.hint && <p className="hint">{error.hint}</p>}
        {result.warnings.map((warning) => (
          <p key={warning} className="warning">
            {warning}
          </p>
        ))}
      </div>
    );
  }

  const who = identityName(result);
  const identity = result.probe?.identity ?? {};
  const details = (['user_id', 'organization_id', 'email'] as const).filter((key) => identity[key] && identity[key] !== who);
  return (
    <div className="test-result test-ok" role="status">
      <p>
        <strong>Connected{who ? ` as ${who}` : ''}.</strong>
        {details.map((key) => ` ${key}: ${identity[key]}.`).join('')}
      </p>
      {result.token && (
        <p>
          Token minted{result.token.subject ? ` for ${result.token.subject}` : ''}
          {result.token.instanceUrl ? ` on ${result.token.instanceUrl}` : ''}
          {result.token.expiresAt ? `, valid until ${formatDateTime(result.token.expiresAt)}` : ''}.
        </p>
      )}
      {result.probe && (
        <p>
          <code>GET {result.probe.url}</code> answered {result.probe.status}.
        </p>
      )}
      {result.warnings.map((warning) => (
        <p key={warning} className="warning">
          {warning}
        </p>
      ))}
    </div>
  );
}
