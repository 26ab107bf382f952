// Sessions: the sandboxes' active leases on the proxy, which an admin can revoke.

import { useCallback, useEffect, useState } from 'react';
import { api, type SessionView } from '../api.ts';
import { ErrorNotice } from '../components/Field.tsx';
import { formatDateTime } from '../credentialBody.ts';

export function SessionsPage() {
  const [sessions, setSessions] = useState<SessionView[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [message, setMessage] = useState<string | null>(null);

  const reload = useCallback(async () => {
    try {
      const body = await api<SessionView[] | { sessions: SessionView[] }>('GET', '/sessions');
      setSessions(Array.isArray(body) ? body : body.sessions);
      setError(null);
    } catch (caught) {
      setError(caught);
    }
  }, []);

  useEffect(() => {
    void reload();
  }, [reload]);

  const revoke = async (session: SessionView) => {
    setMessage(null);
    try {
      await api('DELETE', `/sessions/${encodeURIComponent(session.id)}`);
      setMessage(`Revoked session ${session.id} of channel ${session.channel}; its next request gets 407.`);
      await reload();
    } catch (caught) {
      setError(caught);
    }
  };

  return (
    <section>
      <h1>Sessions</h1>
      <p className="lead">Each sandbox authenticates to the proxy with a session of its channel. Revoking one cuts the sandbox off at its next request.</p>
      <div className="toolbar">
        <button type="button" onClick={reload}>
          Refresh
        </button>
      </div>
      <ErrorNotice error={error} />
      {message && (
        <div className="notice notice-ok" role="status">
          {message}
        </div>
      )}
      {sessions !== null && sessions.length === 0 && <p className="empty">No active sessions. <code>agent-proxy session create</code> or <code>agent-proxy run</code> starts one.</p>}
      {sessions !== null && sessions.length > 0 && (
        <div className="table-scroll">
          <table className="sessions">
            <thead>
              <tr>
                <th scope="col">Session</th>
                <th scope="col">Channel</th>
                <th scope="col">Thread</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {sessions.map((session) => (
                <tr key={session.id} data-session={session.id}>
                  <th scope="row" className="mono">
                    {session.id}
                  </th>
                  <td>{session.channel}</td>
                  <td>{session.thread ?? ''}</td>
                  <td>{formatDateTime(session.createdAt)}</td>
                  <td>{formatDateTime(session.expiresAt)}</td>
                  <td>
                    <button type="button" className="danger" onClick={() => revoke(session)} aria-label={`Revoke session ${session.id}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
