import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { generateDataKey, openValue, parseSealedValue, sealValue, secretBinding } from '../../src/secrets/envelope.ts';
import {
  EnvironmentMasterKeySource,
  KeyFileMasterKeySource,
  localMasterKey,
  masterKeyFingerprint,
  parseMasterKey,
} from '../../src/secrets/masterKey.ts';
import { SecretsError } from '../../src/secrets/secretsError.ts';

describe('envelope', () => {
  test('sealed value round trip', () => {
    const dataKey = generateDataKey();
    const binding = secretBinding('cred_1', 'token');

    const sealed = sealValue(dataKey, 'ghp_round-trip-secret', binding);

    assert.match(sealed, /^v1:dk_[0-9a-f]{24}:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    assert.equal(sealed.includes('ghp_round-trip-secret'), false);
    assert.equal(openValue(dataKey, parseSealedValue(sealed, 'the test value'), binding, 'the test value'), 'ghp_round-trip-secret');
  });

  test('same plaintext seals differently', () => {
    const dataKey = generateDataKey();
    const binding = secretBinding('cred_1', 'token');

    assert.notEqual(sealValue(dataKey, 'same', binding), sealValue(dataKey, 'same', binding));
  });

  test('other binding fails to open', () => {
    const dataKey = generateDataKey();
    const sealed = parseSealedValue(sealValue(dataKey, 'secret', secretBinding('cred_1', 'token')), 'x');

    assert.throws(() => openValue(dataKey, sealed, secretBinding('cred_2', 'token'), 'credentials.secrets.token of cred_2'), {
      name: 'SecretsError',
      code: 'secret_decrypt_failed',
      message:
        `Failed to decrypt credentials.secrets.token of cred_2 with data key ${dataKey.id}: the value was altered or copied from another credential or field. ` +
        'Apply the configuration again to store the secret afresh.',
    });
    assert.throws(() => openValue(dataKey, sealed, secretBinding('cred_1', 'password'), 'y'), { code: 'secret_decrypt_failed' });
  });

  test('malformed sealed value is rejected', () => {
    assert.throws(() => parseSealedValue('plain-secret', 'credentials.secrets.token of cred_1'), {
      code: 'secret_decrypt_failed',
      message:
        'The encrypted value in credentials.secrets.token of cred_1 is not in the v1:<data key id>:<IV>:<ciphertext> format; ' +
        'restore the row from a backup or apply the configuration again.',
    });
  });
});

describe('master key', () => {
  test('parses hex and base64', () => {
    const key = randomBytes(32);

    assert.deepEqual(parseMasterKey(key.toString('hex'), 'test'), key);
    assert.deepEqual(parseMasterKey(key.toString('base64'), 'test'), key);
    assert.deepEqual(parseMasterKey(`${key.toString('base64url')}\n`, 'test'), key);
  });

  test('rejects a key of the wrong size', () => {
    const source = new EnvironmentMasterKeySource('AGENT_PROXY_MASTER_KEY', { AGENT_PROXY_MASTER_KEY: randomBytes(16).toString('base64') });

    return assert.rejects(source.load(), {
      name: 'SecretsError',
      code: 'master_key_invalid',
      message:
        '$AGENT_PROXY_MASTER_KEY is not a 32-byte key in base64 (44 characters) or hex (64 characters); it has 24 characters. ' +
        'Make a key with `openssl rand -base64 32`.',
    });
  });

  test('id is a fingerprint, not the key', async () => {
    const key = randomBytes(32);
    const master = localMasterKey(key, 'test');

    assert.equal(master.id, masterKeyFingerprint(key));
    assert.match(master.id, /^[0-9a-f]{16}$/);
    assert.equal(key.toString('hex').includes(master.id), false);
  });

  test('wrapped data key unwraps only under its id', async () => {
    const master = localMasterKey(randomBytes(32), 'test');
    const dataKey = generateDataKey();
    const wrapped = await master.wrapDataKey(dataKey);

    assert.deepEqual(await master.unwrapDataKey(dataKey.id, wrapped), dataKey.key);
    await assert.rejects(master.unwrapDataKey('dk_000000000000000000000000', wrapped), { code: 'data_key_unwrap_failed' });
  });
});

describe('master key file', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agent-proxy-master-key-'));
    file = path.join(dir, 'master-key');
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('first load creates it with mode 0600', async () => {
    const source = new KeyFileMasterKeySource(file, { create: true });

    const first = await source.load();
    const second = await source.load();

    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(first.id, second.id);
    assert.equal(first.id, masterKeyFingerprint(parseMasterKey(readFileSync(file, 'utf8'), 'test')));
  });

  test('mode 0644 is refused', async () => {
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
    chmodSync(file, 0o644);

    await assert.rejects(new KeyFileMasterKeySource(file, { create: true }).load(), (error: unknown) => {
      assert.ok(error instanceof SecretsError);
      assert.equal(error.code, 'master_key_file_mode');
      assert.equal(
        error.message,
        `The master key file ${file} has mode 0644, which gives users other than its owner access; run \`chmod 600 ${file}\` and start again.`,
      );
      return true;
    });
  });

  test('mode 0400 is accepted', async () => {
    writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o400 });

    const key = await new KeyFileMasterKeySource(file, { create: false }).load();

    assert.match(key.id, /^[0-9a-f]{16}$/);
  });

  test('missing file without create is an error', async () => {
    await assert.rejects(new KeyFileMasterKeySource(file, { create: false }).load(), {
      code: 'master_key_invalid',
      message: `Cannot read the master key file ${file} (ENOENT); restore it from your backup, or set $AGENT_PROXY_MASTER_KEY to the key in use.`,
    });
  });
});
