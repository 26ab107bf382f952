import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

/** The Prometheus metrics of one Agent Proxy process, on a registry of its own so tests can run several. */
export interface ProxyMetrics {
  registry: Registry;
  auditEvents: Counter<'kind' | 'decision' | 'error_code'>;
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
  return { registry, auditEvents };
}
