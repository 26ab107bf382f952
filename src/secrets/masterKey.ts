// The master key wraps the data keys that encrypt secrets; it never encrypts a secret itself.
//
// The rest of the program uses a master key only through `MasterKey.wrapDataKey` and
// `unwrapDataKey`, never as bytes, so a cloud KMS can implement the interface. Its `id`
// would be the KMS key name and version, and wrap and unwrap would call its encrypt and
// decrypt operations with the data key id as encryption context.

import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { aesGcmDecrypt, aesGcmEncrypt, DATA_KEY_BYTES, type DataKey } from './envelope.ts';
import { SecretsError } from './secretsError.ts';

export const MASTER_KEY_ENV = 'AGENT_PROXY_MASTER_KEY';
/** Name of the master key file inside the data directory. */
export const MASTER_KEY_FILE_NAME = 'master-key';

const MASTER_KEY_BYTES = 32;
const WRAPPED_KEY_VERSION = 'v1';

/** A master key, held locally or by a key management service. */
export interface MasterKey {
  /** Fingerprint stored with each wrapped data key; never the key or anything it can be derived from. */
  readonly id: string;
  /** Origin of the key, for messages, such as `$AGENT_PROXY_MASTER_KEY`. */
  readonly origin: string;
  /** Encrypts a data key for storage in `data_keys.wrapped_key`, bound to its data key id. */
  wrapDataKey(dataKey: DataKey): Promise<string>;
  /** Decrypts what `wrapDataKey` returned for the data key `dataKeyId`. */
  unwrapDataKey(dataKeyId: string, wrapped: string): Promise<Buffer>;
}

/** Provider of the master key. `load` may be called again later, to pick up a rotated key. */
export interface MasterKeySource {
  readonly origin: string;
  load(): Promise<MasterKey>;
  /**
   * Returns the key with id `masterKeyId` when an interrupted `keys rotate` left it pending,
   * and makes it the source's current key. Sources that cannot be rotated in place omit this.
   */
  recoverRotation?(masterKeyId: string): Promise<MasterKey | null>;
}

/** Returns the fingerprint of raw master key bytes: the first 16 hex digits of their SHA-256. */
export function masterKeyFingerprint(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

/** Parses a master key written as base64 (standard or URL-safe) or hex of exactly 32 bytes. */
export function parseMasterKey(text: string, origin: string): Buffer {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) {
    return Buffer.from(trimmed, 'hex');
  }
  if (/^[A-Za-z0-9+/]{43}=?$/.test(trimmed) || /^[A-Za-z0-9_-]{43}=?$/.test(trimmed)) {
    const key = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64');
    if (key.length === MASTER_KEY_BYTES) {
      return key;
    }
  }
  // The length helps tell a truncated paste from a wrong encoding, and reveals nothing of the key.
  throw new SecretsError(
    'master_key_invalid',
    `${origin} is not a ${MASTER_KEY_BYTES}-byte key in base64 (44 characters) or hex (64 characters); it has ${trimmed.length} characters. ` +
      'Make a key with `openssl rand -base64 32`.',
  );
}

/** Returns a master key held in this process, which wraps data keys with AES-256-GCM. */
export function localMasterKey(key: Buffer, origin: string): MasterKey {
  if (key.length !== MASTER_KEY_BYTES) {
    throw new SecretsError('master_key_invalid', `${origin} has ${key.length} bytes; a master key has ${MASTER_KEY_BYTES}.`);
  }
  const bytes = Buffer.from(key);
  const id = masterKeyFingerprint(bytes);
  const aad = (dataKeyId: string): Buffer => Buffer.from(`agent-proxy data key\n${dataKeyId}`, 'utf8');
  return {
    id,
    origin,
    async wrapDataKey(dataKey) {
      const { iv, sealed } = aesGcmEncrypt(bytes, dataKey.key, aad(dataKey.id));
      return `${WRAPPED_KEY_VERSION}:${iv.toString('base64')}:${sealed.toString('base64')}`;
    },
    async unwrapDataKey(dataKeyId, wrapped) {
      const [version, iv, sealed, ...rest] = wrapped.split(':');
      let unwrapped: Buffer | null = null;
      if (version === WRAPPED_KEY_VERSION && iv !== undefined && sealed !== undefined && rest.length === 0) {
        try {
          unwrapped = aesGcmDecrypt(bytes, Buffer.from(iv, 'base64'), Buffer.from(sealed, 'base64'), aad(dataKeyId));
        } catch {
          unwrapped = null;
        }
      }
      if (unwrapped === null || unwrapped.length !== DATA_KEY_BYTES) {
        throw new SecretsError(
          'data_key_unwrap_failed',
          `Failed to unwrap data key ${dataKeyId} with master key ${id} from ${origin}: the stored wrapped key is corrupt or was altered. ` +
            'Restore the data_keys table from a backup.',
        );
      }
      return unwrapped;
    },
  };
}

/** A master key given as text in an environment variable. */
export class EnvironmentMasterKeySource implements MasterKeySource {
  readonly origin: string;
  readonly #value: string | undefined;

  constructor(variable: string, env: NodeJS.ProcessEnv = process.env) {
    this.origin = `$${variable}`;
    this.#value = env[variable];
  }

  async load(): Promise<MasterKey> {
    if (this.#value === undefined || this.#value.trim() === '') {
      throw new SecretsError('master_key_invalid', `${this.origin} is not set; set it to a key made with \`openssl rand -base64 32\`.`);
    }
    return localMasterKey(parseMasterKey(this.#value, this.origin), this.origin);
  }
}

export interface KeyFileOptions {
  /** Creates the file, with mode 0600 and a random key, when it is missing. */
  create: boolean;
}

/**
 * A master key in a file readable by its owner only. The file contains the key in base64.
 * A file whose mode grants any access to group or others is rejected.
 */
export class KeyFileMasterKeySource implements MasterKeySource {
  readonly path: string;
  readonly origin: string;
  readonly #create: boolean;

  constructor(path: string, options: KeyFileOptions) {
    this.path = path;
    this.origin = `the key file ${path}`;
    this.#create = options.create;
  }

  /** Path of the new key that `keys rotate` writes before its transaction and renames over the key file after the commit. */
  get pendingPath(): string {
    return `${this.path}.new`;
  }

  async load(): Promise<MasterKey> {
    if (this.#create && !fileExists(this.path)) {
      createKeyFileExclusively(this.path, randomBytes(MASTER_KEY_BYTES));
    }
    return readKeyFile(this.path, this.origin);
  }

  async recoverRotation(masterKeyId: string): Promise<MasterKey | null> {
    if (!fileExists(this.pendingPath)) {
      return null;
    }
    const pending = readKeyFile(this.pendingPath, `the key file ${this.pendingPath}`);
    if (pending.id !== masterKeyId) {
      return null;
    }
    this.commitPendingKey();
    return readKeyFile(this.path, this.origin);
  }

  /** Writes `key` to the pending file, mode 0600, replacing any earlier pending key. */
  writePendingKey(key: Buffer): void {
    const temporary = `${this.pendingPath}.${process.pid}.tmp`;
    writeFileSync(temporary, `${key.toString('base64')}\n`, { mode: 0o600 });
    chmodSync(temporary, 0o600);
    renameSync(temporary, this.pendingPath);
  }

  /** Makes the pending key current by renaming it over the key file, which is atomic on POSIX file systems. */
  commitPendingKey(): void {
    renameSync(this.pendingPath, this.path);
  }

  discardPendingKey(): void {
    rmSync(this.pendingPath, { force: true });
  }
}

/** Returns `$AGENT_PROXY_MASTER_KEY` when it is set, otherwise the key file in the data directory, created on first start. */
export function masterKeySourceFor(dataDirectoryKeyFile: string, env: NodeJS.ProcessEnv = process.env): MasterKeySource {
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    return new EnvironmentMasterKeySource(MASTER_KEY_ENV, env);
  }
  return new KeyFileMasterKeySource(dataDirectoryKeyFile, { create: true });
}

function readKeyFile(path: string, origin: string): MasterKey {
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new SecretsError(
      'master_key_invalid',
      `Cannot read the master key file ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}); ` +
        `restore it from your backup, or set $${MASTER_KEY_ENV} to the key in use.`,
    );
  }
  if (!stats.isFile()) {
    throw new SecretsError('master_key_invalid', `The master key file ${path} is not a regular file; put the key, in base64, in a file there.`);
  }
  const mode = stats.mode & 0o777;
  if ((mode & ~0o600) !== 0) {
    throw new SecretsError(
      'master_key_file_mode',
      `The master key file ${path} has mode 0${mode.toString(8)}, which gives users other than its owner access; ` +
        `run \`chmod 600 ${path}\` and start again.`,
    );
  }
  return localMasterKey(parseMasterKey(readFileSync(path, 'utf8'), origin), origin);
}

// Two processes starting on a new data directory at once must not each make a key. So the
// key is written to a private temporary file and hard-linked into place. The link fails
// when another process got there first, and then that process's key is used.
function createKeyFileExclusively(path: string, key: Buffer): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${key.toString('base64')}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  try {
    linkSync(temporary, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw error;
    }
  } finally {
    rmSync(temporary, { force: true });
  }
}

function fileExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return false;
    }
    throw error;
  }
}
