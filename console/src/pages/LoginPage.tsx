// Sign-in with the admin token. The token is sent once, and the server responds with an
// HttpOnly session cookie and the CSRF token for state-changing requests.

import { useState, type FormEvent } from 'react';
import { api, ApiError, setCsrfToken } from '../api.ts';
import { Field } from '../components/Field.tsx';

export function LoginPage({ onLoggedIn }: { onLoggedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = await api<{ csrfToken: string }>('POST', '/login', { token: token.trim() });
      setCsrfToken(body.csrfToken);
      setToken('');
      onLoggedIn();
    } catch (caught) {
      setError(caught instanceof ApiError && caught.status === 401 ? 'That admin token is not valid. Copy it again from the admin-token file in the data directory.' : String((caught as Error).message));
      setToken('');
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <form className="card form" onSubmit={onSubmit} noValidate>
        <h1>Agent Proxy</h1>
        <p className="lead">Sign in to manage access bundles, credentials and sessions.</p>
        <Field
          id="login-token"
          label="Admin token"
          help={<>The file <code>admin-token</code> in the data directory holds it (<code>.agent-proxy/admin-token</code> by default); <code>agent-proxy serve</code> prints where it is.</>}
          errors={error ? [error] : undefined}
        >
          {(describedBy, invalid) => (
            <input id="login-token" type="password" autoComplete="current-password" required aria-describedby={describedBy} aria-invalid={invalid || undefined} value={token} onChange={(event) => setToken(event.target.value)} />
          )}
        </Field>
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy || token.trim() === ''}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
      </form>
    </main>
  );
}
