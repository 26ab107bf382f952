// The data keys of one process: which are unwrapped in memory, which one encrypts new
// values, and how a data key that another process created gets loaded.

import { generateDataKey, openValue, parseSealedValue, sealValue, type DataKey } from './envelope.ts';
import type { MasterKey, MasterKeySource } from './masterKey.ts';
import { SecretsError } from './secretsError.ts';

/** A row of `data_keys`. */
export interface DataKeyRecord {
  id: string;
  /** The data key encrypted by the master key `masterKeyId`, in the format of `MasterKey.wrapDataKey`. */
  wrappedKey: string;
  masterKeyId: string;
  createdAt: Date;
  /** When a rotation replaced the key; retired keys still decrypt values written before it. */
  retiredAt: Date | null;
}

/**
 * Encrypts and decrypts secret values for the store. `binding` is the associated data that
 * ties a value to its record (see `secretBinding`); `location` names the record in errors.
 */
export interface SecretCipher {
  /** Whether a data key to encrypt with has been loaded or created. */
  readonly hasActiveDataKey: boolean;
  encrypt(plaintext: string, binding: string): string;
  /** Throws SecretsError `data_key_not_loaded` when the value names a data key this cipher has not loaded yet. */
  decrypt(sealed: string, binding: string, location: string): string;
  /**
   * Unwraps the records not loaded yet and makes the newest unretired one the key that
   * encrypts. Throws SecretsError `master_key_mismatch` when a record is wrapped by a master
   * key this cipher cannot obtain. `location` names the database in that error.
   */
  loadDataKeys(records: readonly DataKeyRecord[], location: string): Promise<void>;
  /** Makes a new data key, wrapped by the master key, and encrypts with it from now on; the caller stores the record. */
  createDataKey(now: Date): Promise<DataKeyRecord>;
}

/** SecretCipher whose data keys are wrapped by the key of a MasterKeySource. */
export class EnvelopeCipher implements SecretCipher {
  readonly #source: MasterKeySource;
  readonly #dataKeys = new Map<string, Buffer>();
  #masterKey: MasterKey | null = null;
  #activeId: string | null = null;

  constructor(source: MasterKeySource) {
    this.#source = source;
  }

  get hasActiveDataKey(): boolean {
    return this.#activeId !== null;
  }

  /** Returns the master key in use, loading it from the source on first use. */
  async masterKey(): Promise<MasterKey> {
    this.#masterKey ??= await this.#source.load();
    return this.#masterKey;
  }

  encrypt(plaintext: string, binding: string): string {
    const id = this.#activeId;
    const key = id === null ? undefined : this.#dataKeys.get(id);
    if (id === null || key === undefined) {
      throw new Error('No data key is loaded to encrypt with; open the store through openSqliteStore or SqlStore.open, which create one.');
    }
    return sealValue({ id, key }, plaintext, binding);
  }

  decrypt(sealed: string, binding: string, location: string): string {
    const value = parseSealedValue(sealed, location);
    const key = this.#dataKeys.get(value.dataKeyId);
    if (key === undefined) {
      throw new SecretsError(
        'data_key_not_loaded',
        `${location} is encrypted under data key ${value.dataKeyId}, which is not loaded; reload the data keys from the database.`,
      );
    }
    return openValue({ id: value.dataKeyId, key }, value, binding, location);
  }

  async loadDataKeys(records: readonly DataKeyRecord[], location: string): Promise<void> {
    for (const record of records) {
      if (this.#dataKeys.has(record.id)) {
        continue;
      }
      const masterKey = await this.#masterKeyWithId(record.masterKeyId, location);
      this.#dataKeys.set(record.id, await masterKey.unwrapDataKey(record.id, record.wrappedKey));
    }
    const newest = records
      .filter((record) => record.retiredAt === null)
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1))[0];
    if (newest !== undefined) {
      this.#activeId = newest.id;
    }
  }

  async createDataKey(now: Date): Promise<DataKeyRecord> {
    const masterKey = await this.masterKey();
    const dataKey = generateDataKey();
    const record = { id: dataKey.id, wrappedKey: await masterKey.wrapDataKey(dataKey), masterKeyId: masterKey.id, createdAt: now, retiredAt: null };
    this.#dataKeys.set(dataKey.id, dataKey.key);
    this.#activeId = dataKey.id;
    return record;
  }

  /**
   * Prepares a rotation to `next`: returns every loaded data key wrapped by `next` and
   * marked retired, one fresh data key wrapped by `next`, and a cipher that decrypts with
   * all of them and encrypts with the fresh one. Nothing is stored; the caller writes the
   * records and the re-encrypted values in one transaction.
   */
  async prepareRotation(next: MasterKey, now: Date): Promise<{ records: DataKeyRecord[]; cipher: EnvelopeCipher }> {
    const records: DataKeyRecord[] = [];
    const cipher = new EnvelopeCipher(fixedMasterKeySource(next));
    cipher.#masterKey = next;
    for (const [id, key] of this.#dataKeys) {
      const dataKey: DataKey = { id, key };
      records.push({ id, wrappedKey: await next.wrapDataKey(dataKey), masterKeyId: next.id, createdAt: now, retiredAt: now });
      cipher.#dataKeys.set(id, key);
    }
    records.push(await cipher.createDataKey(now));
    return { records, cipher };
  }

  // A data key wrapped by another master key than the one in memory has three causes. A
  // rotation finished after this process loaded its key, so the source has the new key by
  // now. Or a rotation was interrupted and the source has the key pending. Or the key is wrong.
  async #masterKeyWithId(masterKeyId: string, location: string): Promise<MasterKey> {
    const current = await this.masterKey();
    if (current.id === masterKeyId) {
      return current;
    }
    const reloaded = await this.#source.load();
    if (reloaded.id === masterKeyId) {
      this.#masterKey = reloaded;
      return reloaded;
    }
    const recovered = (await this.#source.recoverRotation?.(masterKeyId)) ?? null;
    if (recovered !== null) {
      this.#masterKey = recovered;
      return recovered;
    }
    throw new SecretsError(
      'master_key_mismatch',
      `The data keys in ${location} are wrapped by master key ${masterKeyId}, but the key from ${reloaded.origin} is ${reloaded.id}; ` +
        'start with the key that was in use, or run `agent-proxy keys rotate` with that key as the old key to re-wrap the data keys.',
    );
  }
}

/** A MasterKeySource that always returns `key`. */
export function fixedMasterKeySource(key: MasterKey): MasterKeySource {
  return { origin: key.origin, load: async () => key };
}
