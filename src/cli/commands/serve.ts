import type { Command } from 'commander';
import { parseResolvePin, type ResolvePin } from '../../proxy/dialer.ts';
import { parseConnectAuthority } from '../../proxy/authority.ts';
import type { ListenAddress } from '../../runtime/agentProxy.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

interface ServeOptions {
  proxyListen?: string;
  adminListen?: string;
  config?: string;
  upstreamCa: string[];
  resolve: string[];
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the proxy and the admin API')
    .option('--proxy-listen <host:port>', 'proxy listen address (default 127.0.0.1:8080)')
    .option('--admin-listen <host:port>', 'admin API and console listen address (default 127.0.0.1:8081)')
    .option('--config <file>', 'bundles file (YAML or JSON) to apply at start')
    .option('--upstream-ca <file>', 'PEM file of extra CAs trusted for upstream TLS (repeatable)', collect, [])
    .option('--resolve <host:port:addr>', 'pin a host and port to an address, as curl --resolve (repeatable)', collect, [])
    .action(async (options: ServeOptions, command: Command) => {
      const context = cliContext(command);
      const pins: ResolvePin[] = options.resolve.map((text) => wrapCliError(() => parseResolvePin(text)));
      const { readBundlesFile } = await import('../../config/bundlesFile.ts');
      const initialConfig = options.config ? wrapCliError(() => readBundlesFile(options.config!)) : undefined;

      // Loaded here so that the client commands do not pay for loading the whole server.
      const { startAgentProxy } = await import('../../runtime/agentProxy.ts');
      const running = await startAgentProxy({
        dataDir: context.dataDir.root,
        proxyListen: options.proxyListen ? parseListen(options.proxyListen, '--proxy-listen') : undefined,
        adminListen: options.adminListen ? parseListen(options.adminListen, '--admin-listen') : undefined,
        initialConfig,
        upstreamCaFiles: options.upstreamCa,
        resolvePins: pins,
        writeServerInfo: true,
      });

      process.stdout.write(
        [
          'Agent Proxy is running.',
          `  proxy:        ${running.proxyUrl}`,
          `  admin API:    ${running.adminUrl}  (console and /api/v1)`,
          `  CA:           ${running.caPath}`,
          `  admin token:  ${running.dataDir.adminTokenPath}${running.adminTokenCreated ? ' (created now)' : ''}`,
          `  data:         ${running.dataDir.root}`,
          '',
          'Next: agent-proxy apply -f bundles.yaml, then agent-proxy run --channel CHANNEL -- curl https://…',
          '',
        ].join('\n'),
      );

      const shutdown = (signal: string) => {
        process.stdout.write(`Received ${signal}, stopping.\n`);
        running.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once('SIGINT', () => shutdown('SIGINT'));
      process.once('SIGTERM', () => shutdown('SIGTERM'));
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseListen(text: string, flag: string): ListenAddress {
  // Port 0 asks the system for a free port, which a CONNECT authority never allows.
  const anyPort = text.endsWith(':0');
  const authority = parseConnectAuthority(anyPort ? `${text.slice(0, -2)}:1` : text);
  if (authority && anyPort) {
    return { host: authority.host, port: 0 };
  }
  if (!authority) {
    throw new CliError(`${flag} "${text}" is invalid: give HOST:PORT, for example 127.0.0.1:8080 or [::1]:8080`);
  }
  return authority;
}

function wrapCliError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    throw new CliError((error as Error).message);
  }
}
