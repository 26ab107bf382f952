import { request } from 'undici';
import { readAdminToken, readServerInfo, type DataDirectory } from '../runtime/dataDir.ts';
import { CliError } from './cliError.ts';

/** Calls the admin API of a server found through the data directory, or `--server` and `$AGENT_PROXY_TOKEN`. */
export class AdminClient {
  readonly baseUrl: string;
  readonly #token: string;

  constructor(baseUrl: string, token: string) {
    this.baseUrl = baseUrl.replace(/\/$/, '');
    this.#token = token;
  }

  static locate(dataDir: DataDirectory, server: string | undefined): AdminClient {
    const token = process.env.AGENT_PROXY_TOKEN ?? readAdminToken(dataDir);
    const baseUrl = server ?? process.env.AGENT_PROXY_SERVER ?? readServerInfo(dataDir)?.adminUrl;
    if (!baseUrl) {
      throw new CliError(`No running Agent Proxy server was found for the data directory ${dataDir.root}. Start one with \`agent-proxy serve\`, or point to one with --server URL.`);
    }
    if (!token) {
      throw new CliError(`No admin token: ${dataDir.adminTokenPath} does not exist. Set $AGENT_PROXY_TOKEN to the server's admin token.`);
    }
    return new AdminClient(baseUrl, token);
  }

  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
    let response;
    try {
      response = await request(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new CliError(`Cannot reach the Agent Proxy admin API at ${this.baseUrl}: ${(error as Error).message}. Is \`agent-proxy serve\` running?`);
    }

    const text = await response.body.text();
    const parsed = text && response.headers['content-type']?.toString().includes('json') ? (JSON.parse(text) as unknown) : text;
    if (response.statusCode >= 400) {
      throw new AdminApiError(response.statusCode, parsed);
    }
    return parsed as T;
  }
}

export class AdminApiError extends CliError {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, body: unknown) {
    const error = (body as { error?: { message?: string } } | undefined)?.error;
    super(`The admin API answered ${status}: ${error?.message ?? String(body)}`);
    this.status = status;
    this.body = body;
  }
}
