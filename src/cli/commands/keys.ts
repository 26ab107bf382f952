import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  EnvironmentMasterKeySource,
  KeyFileMasterKeySource,
  localMasterKey,
  MASTER_KEY_ENV,
  parseMasterKey,
  type MasterKeySource,
} from '../../secrets/masterKey.ts';
import { EnvelopeCipher } from '../../secrets/secretCipher.ts';
import { CliError } from '../cliError.ts';
import { cliContext } from '../context.ts';

export const NEW_MASTER_KEY_ENV = 'AGENT_PROXY_NEW_MASTER_KEY';

interface RotateOptions {
  oldKeyFile?: string;
  newKeyFile?: string;
}

export function registerKeysCommand(program: Command): void {
  const keys = program.command('keys').description('the master key that wraps the data keys of encrypted secrets');

  keys
    .command('rotate')
    .description(
      'wrap every data key under a new master key and re-encrypt every secret under a fresh data key, in one transaction ' +
        'on the data directory\'s database; running servers that read the data directory\'s key file pick up the new key',
    )
    .option('--old-key-file <file>', 'file with the master key in use (default: $AGENT_PROXY_MASTER_KEY, else the data directory\'s key file)')
    .option('--new-key-file <file>', `file with the new master key (default: $${NEW_MASTER_KEY_ENV}, else a random key written to the data directory's key file)`)
    .action(async (options: RotateOptions, command: Command) => {
      const { dataDir } = cliContext(command);
      const output = await rotateKeys(dataDir.databasePath, dataDir.masterKeyPath, options, process.env);
      process.stdout.write(output);
    });
}

/**
 * Rotates the master key of the database at `databasePath` and returns the report to print.
 * When servers read the key file `keyFilePath` (no `$AGENT_PROXY_MASTER_KEY`), the new key is
 * written to `<key file>.new` before the transaction and renamed over the key file after the
 * commit. So a crash at any point leaves every secret readable by a key on disk, and a
 * server that starts in between completes the rename.
 */
export async function rotateKeys(databasePath: string, keyFilePath: string, options: RotateOptions, env: NodeJS.ProcessEnv): Promise<string> {
  // Loaded here: the store pulls in the SQLite driver, which the CLI's other commands do not need.
  const { migrate } = await import('../../store/migrations.ts');
  const { rotateMasterKey } = await import('../../store/secretColumns.ts');
  const { SqliteDatabase } = await import('../../store/sqliteDatabase.ts');
  const { SqlStore } = await import('../../store/sqlStore.ts');

  if (!existsSync(databasePath)) {
    throw new CliError(`No database at ${databasePath}, so there are no keys to rotate; check --data-dir or $AGENT_PROXY_HOME.`);
  }
  const serversUseEnv = (env[MASTER_KEY_ENV] ?? '') !== '';
  const oldSource: MasterKeySource =
    options.oldKeyFile !== undefined
      ? new KeyFileMasterKeySource(options.oldKeyFile, { create: false })
      : serversUseEnv
        ? new EnvironmentMasterKeySource(MASTER_KEY_ENV, env)
        : new KeyFileMasterKeySource(keyFilePath, { create: false });
  const { bytes: newKeyBytes, origin: newOrigin } = await readNewKey(options, env, serversUseEnv);
  const newKey = localMasterKey(newKeyBytes, newOrigin);
  const oldCipher = new EnvelopeCipher(oldSource);
  const oldKey = await oldCipher.masterKey();
  if (oldKey.id === newKey.id) {
    throw new CliError(`The new master key is the old one (fingerprint ${oldKey.id}); give a different key.`);
  }

  const database = SqliteDatabase.open(databasePath);
  const keyFile = serversUseEnv ? null : new KeyFileMasterKeySource(keyFilePath, { create: false });
  let rotation;
  try {
    await migrate(database, { location: databasePath });
    // Opening the store seals the plaintext secrets an older release left, so every value is sealed before rotating.
    await SqlStore.open(database, { cipher: oldCipher, location: databasePath });
    keyFile?.writePendingKey(newKeyBytes);
    rotation = await rotateMasterKey(database, oldCipher, newKey, databasePath, new Date());
  } catch (error) {
    keyFile?.discardPendingKey();
    throw error;
  } finally {
    await database.close();
  }
  if (keyFile !== null) {
    await commitKeyFile(keyFile, newKey.id);
  }

  const lines = [
    `Rotated the master key of ${databasePath} from ${oldKey.id} to ${newKey.id}.`,
    `Re-encrypted ${rotation.reencryptedValues} secret values under the new data key ${rotation.newDataKeyId} and re-wrapped ${rotation.retiredDataKeys} older data keys.`,
    keyFile !== null
      ? `Wrote the new key to ${keyFilePath}; running servers that use it load it when they next read a secret. Back it up now: without it the secrets cannot be decrypted.`
      : `Set $${MASTER_KEY_ENV} to the new key and restart each server. Until then they keep serving the configuration they loaded, but cannot read secrets written since.`,
  ];
  return `${lines.join('\n')}\n`;
}

async function readNewKey(options: RotateOptions, env: NodeJS.ProcessEnv, serversUseEnv: boolean): Promise<{ bytes: Buffer; origin: string }> {
  if (options.newKeyFile !== undefined) {
    // Loading through the source checks the file's mode before its bytes are used.
    await new KeyFileMasterKeySource(options.newKeyFile, { create: false }).load();
    const origin = `the key file ${options.newKeyFile}`;
    return { bytes: parseMasterKey(readFileSync(options.newKeyFile, 'utf8'), origin), origin };
  }
  const fromEnv = env[NEW_MASTER_KEY_ENV] ?? '';
  if (fromEnv !== '') {
    const origin = `$${NEW_MASTER_KEY_ENV}`;
    return { bytes: parseMasterKey(fromEnv, origin), origin };
  }
  if (serversUseEnv) {
    throw new CliError(
      `$${MASTER_KEY_ENV} is set, so servers take their master key from the environment and this command cannot give them a new one. ` +
        `Make a key with \`openssl rand -base64 32\` and pass it with --new-key-file FILE or $${NEW_MASTER_KEY_ENV}.`,
    );
  }
  return { bytes: randomBytes(32), origin: 'a new random key' };
}

// A running server that met the new data key before this command renamed the pending key
// file has already renamed it (see KeyFileMasterKeySource.recoverRotation).
async function commitKeyFile(keyFile: KeyFileMasterKeySource, newKeyId: string): Promise<void> {
  try {
    keyFile.commitPendingKey();
    return;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CliError(
        `The database now uses master key ${newKeyId}, but moving ${keyFile.pendingPath} to ${keyFile.path} failed (${(error as Error).message}); ` +
          'rename it by hand before starting a server.',
      );
    }
  }
  const current = await keyFile.load();
  if (current.id !== newKeyId) {
    throw new CliError(
      `The database now uses master key ${newKeyId}, but ${keyFile.path} contains key ${current.id} and ${keyFile.pendingPath} is gone; ` +
        'put the new key into the key file before starting a server.',
    );
  }
}
