import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

/** The Prometheus metrics of one Agent Proxy process, on a registry of its own so tests can run several. */
export interface ProxyMetrics {
  registry: Registry;
  auditEvents: Counter<'kind' | 'decision' | 'error_code'>;
  /** Client connections and requests refused by a limit or by the HTTP parser, before any session or audit event exists. */
  limitRefusals: Counter<'error_code'>;
}

export function createMetrics(): ProxyMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'agent_proxy_' });
  const auditEvents = new Counter({
    name: 'agent_proxy_decisions_total',
    help: 'Proxied requests, tunnels and refusals, by kind, decision and error code.',
    labelNames: ['kind', 'decision', 'error_code'] as const,
    registers: [registry],
  });
  const limitRefusals = new Counter({
    name: 'agent_proxy_limit_refusals_total',
    help: 'Connections and requests refused by a limit (429 too_many_connections, 431, 408) or as unparsable (400), by error code.',
    labelNames: ['error_code'] as const,
    registers: [registry],
  });
  return { registry, auditEvents, limitRefusals };
}
