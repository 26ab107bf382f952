import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { MASTER_KEY_FILE_NAME } from '../secrets/masterKey.ts';

/** Where a data directory keeps each of its files. */
export interface DataDirectory {
  root: string;
  databasePath: string;
  /** The master key file, used when `$AGENT_PROXY_MASTER_KEY` is not set. */
  masterKeyPath: string;
  adminTokenPath: string;
  serverInfoPath: string;
  caBundlePath: string;
}

/** What a running server writes so the CLI can find it. */
export interface ServerInfo {
  pid: number;
  proxyUrl: string;
  adminUrl: string;
  caPath: string;
  caBundlePath: string;
}

/** Resolves the data directory: `--data-dir`, then `$AGENT_PROXY_HOME`, then `./.agent-proxy`. */
export function resolveDataDirectory(explicit?: string): DataDirectory {
  const root = path.resolve(explicit ?? process.env.AGENT_PROXY_HOME ?? '.agent-proxy');
  return {
    root,
    databasePath: path.join(root, 'agent-proxy.db'),
    masterKeyPath: path.join(root, MASTER_KEY_FILE_NAME),
    adminTokenPath: path.join(root, 'admin-token'),
    serverInfoPath: path.join(root, 'server.json'),
    caBundlePath: path.join(root, 'ca-bundle.pem'),
  };
}

export function ensureDataDirectory(dir: DataDirectory): void {
  mkdirSync(dir.root, { recursive: true, mode: 0o700 });
}

/** Writes a file readable only by its owner, atomically, so a crash never leaves half a secret. */
export function writePrivateFile(filePath: string, content: string): void {
  const temporary = `${filePath}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, filePath);
}

/** Returns the bootstrap admin token of the data directory, creating it on first start. */
export function loadOrCreateAdminToken(dir: DataDirectory): { token: string; created: boolean } {
  if (existsSync(dir.adminTokenPath)) {
    const token = readFileSync(dir.adminTokenPath, 'utf8').trim();
    if (token.length < 32) {
      throw new Error(`The admin token file ${dir.adminTokenPath} is empty or too short; delete it and restart to make a new one.`);
    }
    return { token, created: false };
  }
  const token = `apt_${randomBytes(32).toString('base64url')}`;
  writePrivateFile(dir.adminTokenPath, `${token}\n`);
  return { token, created: true };
}

export function readAdminToken(dir: DataDirectory): string | null {
  return existsSync(dir.adminTokenPath) ? readFileSync(dir.adminTokenPath, 'utf8').trim() : null;
}

/**
 * Writes the CA bundle that sandboxes point their CA variables at: Node's bundled
 * public roots plus the proxy's CA. Variables such as REQUESTS_CA_BUNDLE replace a
 * client's roots, so tunnelled (not intercepted) hosts must still verify with it.
 */
export function writeCaBundle(dir: DataDirectory, proxyCaPem: string): void {
  const content = `${[...tls.rootCertificates, proxyCaPem.trim()].join('\n')}\n`;
  const temporary = `${dir.caBundlePath}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode: 0o644 });
  renameSync(temporary, dir.caBundlePath);
}

export function writeServerInfo(dir: DataDirectory, info: ServerInfo): void {
  writePrivateFile(dir.serverInfoPath, `${JSON.stringify(info, null, 2)}\n`);
}

export function readServerInfo(dir: DataDirectory): ServerInfo | null {
  if (!existsSync(dir.serverInfoPath)) {
    return null;
  }
  return JSON.parse(readFileSync(dir.serverInfoPath, 'utf8')) as ServerInfo;
}

export function removeServerInfo(dir: DataDirectory): void {
  rmSync(dir.serverInfoPath, { force: true });
}
