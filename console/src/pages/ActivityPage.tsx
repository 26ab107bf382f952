// Activity: the audit log, newest first, filtered on the server. While "Live" is on it
// requests the events after the newest one shown every 2 seconds.

import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { api, queryString, type AuditEventView } from '../api.ts';
import { ErrorNotice } from '../components/Field.tsx';
import { formatDateTime } from '../credentialBody.ts';

const PAGE_SIZE = 100;
const POLL_INTERVAL_MS = 2000;

interface Filters {
  channel: string;
  bundle: string;
  credential: string;
  decision: string;
}

const EMPTY_FILTERS: Filters = { channel: '', bundle: '', credential: '', decision: '' };

function newestFirst(events: AuditEventView[]): AuditEventView[] {
  return [...events].sort((left, right) => right.id - left.id);
}

function target(event: AuditEventView): string {
  if (!event.host) return '';
  const port = event.port && event.port !== 443 ? `:${event.port}` : '';
  return `${event.method ? `${event.method} ` : ''}${event.host}${port}${event.path ?? ''}`;
}

export function ActivityPage() {
  const [draft, setDraft] = useState<Filters>(EMPTY_FILTERS);
  const [filters, setFilters] = useState<Filters>(EMPTY_FILTERS);
  const [events, setEvents] = useState<AuditEventView[]>([]);
  const [nextBeforeId, setNextBeforeId] = useState<number | null>(null);
  const [live, setLive] = useState(true);
  const [error, setError] = useState<unknown>(null);
  const newestId = useRef(0);

  const load = useCallback(async (params: Record<string, string | number | undefined>) => {
    return api<{ events: AuditEventView[]; nextBeforeId?: number | null }>('GET', `/audit${queryString({ ...filters, ...params })}`);
  }, [filters]);

  useEffect(() => {
    let cancelled = false;
    newestId.current = 0;
    setEvents([]);
    load({ limit: PAGE_SIZE }).then(
      (body) => {
        if (cancelled) return;
        const sorted = newestFirst(body.events);
        newestId.current = sorted[0]?.id ?? 0;
        setEvents(sorted);
        setNextBeforeId(body.nextBeforeId ?? null);
        setError(null);
      },
      (caught) => !cancelled && setError(caught),
    );
    return () => {
      cancelled = true;
    };
  }, [load]);

  useEffect(() => {
    if (!live) return undefined;
    const timer = window.setInterval(() => {
      load({ afterId: newestId.current, limit: 1000 }).then(
        (body) => {
          const fresh = body.events.filter((event) => event.id > newestId.current);
          if (fresh.length === 0) return;
          const sorted = newestFirst(fresh);
          newestId.current = sorted[0]!.id;
          setEvents((current) => [...sorted, ...current]);
          setError(null);
        },
        setError,
      );
    }, POLL_INTERVAL_MS);
    return () => window.clearInterval(timer);
  }, [live, load]);

  const loadOlder = async () => {
    if (nextBeforeId === null) return;
    try {
      const body = await load({ beforeId: nextBeforeId, limit: PAGE_SIZE });
      setEvents((current) => [...current, ...newestFirst(body.events)]);
      setNextBeforeId(body.nextBeforeId ?? null);
    } catch (caught) {
      setError(caught);
    }
  };

  const onFilter = (event: FormEvent) => {
    event.preventDefault();
    setFilters({ channel: draft.channel.trim(), bundle: draft.bundle.trim(), credential: draft.credential.trim(), decision: draft.decision });
  };

  const filterInput = (name: 'channel' | 'bundle' | 'credential', label: string) => (
    <div className="field">
      <label htmlFor={`filter-${name}`}>{label}</label>
      <input id={`filter-${name}`} type="text" spellCheck={false} value={draft[name]} onChange={(event) => setDraft({ ...draft, [name]: event.target.value })} />
    </div>
  );

  return (
    <section>
      <h1>Activity</h1>
      <p className="lead">Every proxied request, tunnel, refusal and token mint. Query values, bodies and secrets are never recorded.</p>
      <form className="card filters" onSubmit={onFilter} aria-label="Filter activity">
        {filterInput('channel', 'Channel')}
        {filterInput('bundle', 'Bundle')}
        {filterInput('credential', 'Credential')}
        <div className="field">
          <label htmlFor="filter-decision">Decision</label>
          <select id="filter-decision" value={draft.decision} onChange={(event) => setDraft({ ...draft, decision: event.target.value })}>
            <option value="">Any</option>
            <option value="allowed">Allowed</option>
            <option value="denied">Denied</option>
            <option value="error">Error</option>
          </select>
        </div>
        <div className="form-actions">
          <button type="submit" className="primary">
            Apply filters
          </button>
          <div className="checkbox">
            <input id="activity-live" type="checkbox" checked={live} onChange={(event) => setLive(event.target.checked)} />
            <label htmlFor="activity-live">Live (every 2 s)</label>
          </div>
        </div>
      </form>
      <ErrorNotice error={error} />
      {events.length === 0 ? (
        <p className="empty">No events match yet.</p>
      ) : (
        <div className="table-scroll">
          <table className="activity">
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Event</th>
                <th scope="col">Decision</th>
                <th scope="col">Channel</th>
                <th scope="col">Bundle</th>
                <th scope="col">Credential</th>
                <th scope="col">Subject</th>
                <th scope="col">Request</th>
                <th scope="col">Status</th>
              </tr>
            </thead>
            <tbody>
              {events.map((event) => (
                <tr key={event.id} data-kind={event.kind}>
                  <td className="nowrap">{formatDateTime(event.time)}</td>
                  <td>{event.kind}</td>
                  <td className={event.decision === 'allowed' ? 'status-ok' : 'status-bad'}>
                    {event.decision}
                    {event.errorCode ? ` (${event.errorCode})` : ''}
                  </td>
                  <td>{event.channel ?? ''}</td>
                  <td>{event.bundle ?? ''}</td>
                  <td>{event.credential ?? ''}</td>
                  <td>{event.subject ?? ''}</td>
                  <td className="mono break">{target(event)}</td>
                  <td>{event.status ?? ''}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {nextBeforeId !== null && (
        <div className="toolbar">
          <button type="button" onClick={loadOlder}>
            Load older events
          </button>
        </div>
      )}
    </section>
  );
}
