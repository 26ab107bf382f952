// Behaviour every Store implementation must have. Each backend's test file calls
// runStoreContract with a factory that opens an empty, migrated store.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DEFAULT_EGRESS } from '../../src/domain/types.ts';
import type { AuditEvent, Bundle, Credential, ProxyConfig } from '../../src/domain/types.ts';
import type { Store, StoredSession } from '../../src/store/store.ts';

export interface OpenedStore {
  store: Store;
  cleanup: () => Promise<void>;
}

export function credential(name: string, overrides: Partial<Credential> = {}): Credential {
  return {
    id: '',
    bundleId: '',
    name,
    settings: { type: 'bearer_token' },
    secrets: { token: `token-of-${name}` },
    allowedWebsites: [`${name}.example.com`],
    access: 'read',
    rules: [],
    extraHeaders: {},
    ...overrides,
  };
}

export function bundle(name: string, credentials: Credential[], overrides: Partial<Bundle> = {}): Bundle {
  return { id: '', name, description: `${name} tools`, channels: ['C0SALES'], credentials, ...overrides };
}

/** Two bundles given out of name order, with credentials of several types and every optional field set. */
export function sampleConfig(): ProxyConfig {
  return {
    egress: { default: 'deny', allow: ['pypi.org', '*.npmjs.org'], allowPrivateNetworks: ['10.0.0.0/8'] },
    bundles: [
      bundle('support', [credential('zendesk', { access: 'read_write' })], { channels: ['*'], description: '' }),
      bundle('sales', [
        credential('salesforce', {
          settings: {
            type: 'oauth2_jwt_bearer',
            issuer: '3MVG9abc',
            subject: 'integration@example.com',
            tokenUrl: 'https://login.salesforce.com/services/oauth2/token',
            audience: 'https://login.salesforce.com',
          },
          secrets: { privateKey: '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n' },
          allowedWebsites: ['yourorg.my.salesforce.com'],
          rules: [{ methods: ['GET'], paths: ['/services/data/*/query'] }],
        }),
        credential('github', {
          settings: { type: 'api_key', headerName: 'Authorization', prefix: 'token ' },
          secrets: { value: 'ghp_example' },
          extraHeaders: { 'X-GitHub-Api-Version': '2022-11-28' },
        }),
      ]),
    ],
  };
}

function session(id: string, overrides: Partial<StoredSession> = {}): StoredSession {
  return {
    id,
    tokenHash: Buffer.from(`hash-of-${id}`.padEnd(32, '.')),
    channel: 'C0SALES',
    thread: null,
    createdAt: new Date('2025-01-01T10:00:00.000Z'),
    expiresAt: new Date('2025-01-01T11:00:00.000Z'),
    revokedAt: null,
    ...overrides,
  };
}

function auditEvent(overrides: Partial<AuditEvent> = {}): AuditEvent {
  return {
    time: new Date('2025-01-01T10:00:00.000Z'),
    kind: 'request',
    decision: 'allowed',
    errorCode: null,
    sessionId: 'ses_1',
    channel: 'C0SALES',
    thread: null,
    bundle: 'sales',
    credential: 'salesforce',
    method: 'GET',
    host: 'yourorg.my.salesforce.com',
    port: 443,
    path: '/services/data/v60.0/query?q=',
    status: 200,
    bytesIn: 120,
    bytesOut: 4096,
    durationMs: 12.5,
    subject: null,
    clientAddress: '127.0.0.1',
    ...overrides,
  };
}

/** The config as loadConfig would return it, ignoring the ids the store assigns. */
function withoutIds(config: ProxyConfig): ProxyConfig {
  const bundles = [...config.bundles]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((b) => ({
      ...b,
      id: '',
      credentials: [...b.credentials]
        .sort((x, y) => (x.name < y.name ? -1 : 1))
        .map((c) => ({ ...c, id: '', bundleId: '' })),
    }));
  return { egress: config.egress, bundles };
}

function idsByName(config: ProxyConfig): Map<string, string> {
  const ids = new Map<string, string>();
  for (const b of config.bundles) {
    ids.set(`bundle/${b.name}`, b.id);
    for (const c of b.credentials) {
      ids.set(`credential/${c.name}`, c.id);
    }
  }
  return ids;
}

function findCredential(config: ProxyConfig, name: string): Credential {
  const found = config.bundles.flatMap((b) => b.credentials).find((c) => c.name === name);
  assert.ok(found, `credential ${name} is missing from the loaded config`);
  return found;
}

export function runStoreContract(name: string, openStore: () => Promise<OpenedStore>): void {
  describe(`${name} store contract`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await openStore());
    });

    afterEach(async () => {
      await cleanup();
    });

    describe('loadConfig', () => {
      it('returns defaults for an empty store', async () => {
        const config = await store.loadConfig();

        assert.deepEqual(config, { egress: DEFAULT_EGRESS, bundles: [] });
      });

      it('orders bundles and credentials by name', async () => {
        await store.replaceConfig(sampleConfig());

        const config = await store.loadConfig();

        assert.deepEqual(
          config.bundles.map((b) => b.name),
          ['sales', 'support'],
        );
        assert.deepEqual(
          config.bundles[0]?.credentials.map((c) => c.name),
          ['github', 'salesforce'],
        );
      });

      it('round-trips every credential field', async () => {
        await store.replaceConfig(sampleConfig());

        const loaded = await store.loadConfig();

        assert.deepEqual(stripIds(loaded), withoutIds(sampleConfig()));
      });

      it('assigns prefixed ids and bundle ids', async () => {
        await store.replaceConfig(sampleConfig());

        const loaded = await store.loadConfig();

        for (const b of loaded.bundles) {
          assert.match(b.id, /^bun_[0-9a-f]{24}$/);
          for (const c of b.credentials) {
            assert.match(c.id, /^cred_[0-9a-f]{24}$/);
            assert.equal(c.bundleId, b.id);
          }
        }
        const ids = [...idsByName(loaded).values()];
        assert.equal(new Set(ids).size, ids.length);
      });
    });

    describe('replaceConfig', () => {
      it('reports everything created on first apply', async () => {
        const changes = await store.replaceConfig(sampleConfig());

        assert.deepEqual(changes, {
          created: [
            'bundle/sales',
            'bundle/sales/credential/github',
            'bundle/sales/credential/salesforce',
            'bundle/support',
            'bundle/support/credential/zendesk',
          ],
          changed: ['egress'],
          deleted: [],
        });
      });

      it('returns empty lists when applied twice', async () => {
        await store.replaceConfig(sampleConfig());
        const before = await store.loadConfig();

        const changes = await store.replaceConfig(sampleConfig());

        assert.deepEqual(changes, { created: [], changed: [], deleted: [] });
        assert.deepEqual(await store.loadConfig(), before);
      });

      it('ignores object key order', async () => {
        await store.replaceConfig(sampleConfig());
        const reordered = sampleConfig();
        reordered.egress = { allowPrivateNetworks: ['10.0.0.0/8'], allow: ['pypi.org', '*.npmjs.org'], default: 'deny' };
        const github = reordered.bundles[1]?.credentials[1];
        assert.ok(github);
        github.settings = { prefix: 'token ', headerName: 'Authorization', type: 'api_key' };

        const changes = await store.replaceConfig(reordered);

        assert.deepEqual(changes, { created: [], changed: [], deleted: [] });
      });

      it('ignores ids given in the config', async () => {
        const config = sampleConfig();
        const sales = config.bundles[1];
        assert.ok(sales);
        sales.id = 'bun_given';
        sales.credentials[0] = { ...credential('salesforce'), id: 'cred_given', bundleId: 'bun_other' };

        await store.replaceConfig(config);

        const loaded = await store.loadConfig();
        const salesforce = findCredential(loaded, 'salesforce');
        assert.notEqual(loaded.bundles[0]?.id, 'bun_given');
        assert.notEqual(salesforce.id, 'cred_given');
        assert.equal(salesforce.bundleId, loaded.bundles[0]?.id);
      });

      it('keeps ids of changed objects', async () => {
        await store.replaceConfig(sampleConfig());
        const before = idsByName(await store.loadConfig());
        const config = sampleConfig();
        const sales = config.bundles[1];
        assert.ok(sales);
        sales.channels = ['C0SALES', 'C0DEALS'];
        sales.credentials[1] = { ...credential('github'), secrets: { token: 'rotated' } };

        const changes = await store.replaceConfig(config);

        assert.deepEqual(changes, {
          created: [],
          changed: ['bundle/sales', 'bundle/sales/credential/github'],
          deleted: [],
        });
        const loaded = await store.loadConfig();
        assert.deepEqual(idsByName(loaded), before);
        assert.deepEqual(loaded.bundles[0]?.channels, ['C0SALES', 'C0DEALS']);
        assert.deepEqual(findCredential(loaded, 'github').secrets, { token: 'rotated' });
        assert.deepEqual(findCredential(loaded, 'github').settings, { type: 'bearer_token' });
      });

      it('detects a change in each credential field', async () => {
        const edits: [string, Partial<Credential>][] = [
          ['settings', { settings: { type: 'basic_auth', username: 'robot' } }],
          ['secrets', { secrets: { token: 'other' } }],
          ['allowedWebsites', { allowedWebsites: ['*.zendesk.com'] }],
          ['access', { access: 'read' }],
          ['rules', { rules: [{ methods: ['GET'] }] }],
          ['extraHeaders', { extraHeaders: { 'Zendesk-Version': '2' } }],
        ];
        await store.replaceConfig(sampleConfig());

        for (const [field, edit] of edits) {
          await store.replaceConfig(sampleConfig());
          const config = sampleConfig();
          const support = config.bundles[0];
          assert.ok(support);
          support.credentials[0] = { ...credential('zendesk', { access: 'read_write' }), ...edit };

          const changes = await store.replaceConfig(config);

          assert.deepEqual(changes.changed, ['bundle/support/credential/zendesk'], `edit of ${field}`);
        }
      });

      it('moves a credential keeping its id', async () => {
        await store.replaceConfig(sampleConfig());
        const before = idsByName(await store.loadConfig());
        const config = sampleConfig();
        const [support, sales] = config.bundles;
        assert.ok(support);
        assert.ok(sales);
        const github = sales.credentials.pop();
        assert.ok(github);
        support.credentials.push(github);

        const changes = await store.replaceConfig(config);

        assert.deepEqual(changes, { created: [], changed: ['bundle/support/credential/github'], deleted: [] });
        const loaded = await store.loadConfig();
        const moved = findCredential(loaded, 'github');
        assert.equal(moved.id, before.get('credential/github'));
        assert.equal(moved.bundleId, before.get('bundle/support'));
      });

      it('moves a credential out of a deleted bundle', async () => {
        await store.replaceConfig(sampleConfig());
        const before = idsByName(await store.loadConfig());
        const config = sampleConfig();
        const [support, sales] = config.bundles;
        assert.ok(support);
        assert.ok(sales);
        support.credentials.push(...sales.credentials.filter((c) => c.name === 'salesforce'));
        config.bundles = [support];

        const changes = await store.replaceConfig(config);

        assert.deepEqual(changes, {
          created: [],
          changed: ['bundle/support/credential/salesforce'],
          deleted: ['bundle/sales', 'bundle/sales/credential/github'],
        });
        const loaded = await store.loadConfig();
        assert.equal(findCredential(loaded, 'salesforce').id, before.get('credential/salesforce'));
        assert.deepEqual(
          loaded.bundles.map((b) => b.name),
          ['support'],
        );
      });

      it('deletes missing bundles and credentials', async () => {
        await store.replaceConfig(sampleConfig());
        const config = sampleConfig();
        const sales = config.bundles[1];
        assert.ok(sales);
        sales.credentials = sales.credentials.filter((c) => c.name !== 'github');
        config.bundles = [sales, bundle('ops', [credential('pagerduty')])];

        const changes = await store.replaceConfig(config);

        assert.deepEqual(changes, {
          created: ['bundle/ops', 'bundle/ops/credential/pagerduty'],
          changed: [],
          deleted: ['bundle/sales/credential/github', 'bundle/support', 'bundle/support/credential/zendesk'],
        });
        assert.deepEqual(stripIds(await store.loadConfig()), withoutIds(config));
      });

      it('empties the store for an empty config', async () => {
        await store.replaceConfig(sampleConfig());

        const changes = await store.replaceConfig({ egress: DEFAULT_EGRESS, bundles: [] });

        assert.equal(changes.deleted.length, 5);
        assert.deepEqual(changes.changed, ['egress']);
        assert.deepEqual(await store.loadConfig(), { egress: DEFAULT_EGRESS, bundles: [] });
      });

      it('skips egress equal to the default', async () => {
        const changes = await store.replaceConfig({ egress: { ...DEFAULT_EGRESS }, bundles: [] });

        assert.deepEqual(changes, { created: [], changed: [], deleted: [] });
      });

      it('rejects a repeated credential name unchanged', async () => {
        await store.replaceConfig(sampleConfig());
        const before = await store.loadConfig();
        const config = sampleConfig();
        config.egress = DEFAULT_EGRESS;
        config.bundles.push(bundle('new', [credential('brand-new'), credential('salesforce')]));

        await assert.rejects(store.replaceConfig(config), {
          message:
            'Credential name "salesforce" appears in bundle "sales" and again in bundle "new"; ' +
            'credential names must be unique across all bundles.',
        });
        assert.deepEqual(await store.loadConfig(), before);
      });

      it('rejects a repeated bundle name', async () => {
        const config = sampleConfig();
        config.bundles.push(bundle('sales', []));

        await assert.rejects(store.replaceConfig(config), {
          message: 'Bundle name "sales" appears more than once; give each bundle a unique name.',
        });
        assert.deepEqual(await store.loadConfig(), { egress: DEFAULT_EGRESS, bundles: [] });
      });

      it('serialises concurrent applies', async () => {
        const first = sampleConfig();
        const second = sampleConfig();
        second.bundles.push(bundle('ops', [credential('pagerduty')]));

        const results = await Promise.all([store.replaceConfig(first), store.replaceConfig(second)]);

        assert.equal(results[0].created.length, 5);
        assert.deepEqual(results[1], {
          created: ['bundle/ops', 'bundle/ops/credential/pagerduty'],
          changed: [],
          deleted: [],
        });
      });
    });

    describe('previewConfig', () => {
      it('reports the changes replaceConfig would make and writes nothing', async () => {
        const config = sampleConfig();

        const preview = await store.previewConfig(config);
        const loaded = await store.loadConfig();
        const applied = await store.replaceConfig(config);

        assert.deepEqual(loaded.bundles, []);
        assert.deepEqual(preview, applied);
      });
    });

    describe('refresh token rotation', () => {
      it('stores a first rotation and reads it back', async () => {
        await store.replaceConfig(sampleConfig());
        const id = findCredential(await store.loadConfig(), sampleConfig().bundles[0]!.credentials[0]!.name).id;

        const saved = await store.saveRefreshTokenRotation(id, { seedHash: 'seed-1', refreshToken: 'rt-2' }, null);

        assert.equal(saved, true);
        assert.deepEqual(await store.getRefreshTokenRotation(id), { seedHash: 'seed-1', refreshToken: 'rt-2' });
      });

      it('refuses a write whose expected token is stale', async () => {
        await store.replaceConfig(sampleConfig());
        const id = findCredential(await store.loadConfig(), sampleConfig().bundles[0]!.credentials[0]!.name).id;
        await store.saveRefreshTokenRotation(id, { seedHash: 'seed-1', refreshToken: 'rt-2' }, null);

        const stale = await store.saveRefreshTokenRotation(id, { seedHash: 'seed-1', refreshToken: 'rt-3' }, 'rt-1');
        const fresh = await store.saveRefreshTokenRotation(id, { seedHash: 'seed-1', refreshToken: 'rt-3' }, 'rt-2');

        assert.equal(stale, false);
        assert.equal(fresh, true);
        assert.deepEqual(await store.getRefreshTokenRotation(id), { seedHash: 'seed-1', refreshToken: 'rt-3' });
      });

      it('starts over when the configured token changed', async () => {
        await store.replaceConfig(sampleConfig());
        const id = findCredential(await store.loadConfig(), sampleConfig().bundles[0]!.credentials[0]!.name).id;
        await store.saveRefreshTokenRotation(id, { seedHash: 'seed-1', refreshToken: 'rt-2' }, null);

        const saved = await store.saveRefreshTokenRotation(id, { seedHash: 'seed-2', refreshToken: 'rt-9' }, null);

        assert.equal(saved, true);
        assert.deepEqual(await store.getRefreshTokenRotation(id), { seedHash: 'seed-2', refreshToken: 'rt-9' });
      });

      it('returns null for a credential without rotation', async () => {
        assert.equal(await store.getRefreshTokenRotation('cred_unknown'), null);
      });
    });

    describe('sessions', () => {
      it('round-trips a session', async () => {
        const stored = session('ses_a', { thread: '1700000000.000100' });

        await store.createSession(stored);

        assert.deepEqual(await store.getSession('ses_a'), stored);
      });

      it('returns null for an unknown id', async () => {
        assert.equal(await store.getSession('ses_missing'), null);
      });

      it('rejects a duplicate id', async () => {
        await store.createSession(session('ses_a'));

        await assert.rejects(store.createSession(session('ses_a')));
      });

      it('revokes once and keeps the first time', async () => {
        await store.createSession(session('ses_a'));
        const first = new Date('2025-01-01T10:30:00.000Z');

        assert.equal(await store.revokeSession('ses_a', first), true);
        assert.equal(await store.revokeSession('ses_a', new Date('2025-01-01T10:45:00.000Z')), true);

        assert.deepEqual((await store.getSession('ses_a'))?.revokedAt, first);
      });

      it('reports revoking an unknown session', async () => {
        assert.equal(await store.revokeSession('ses_missing', new Date()), false);
      });

      it('lists active sessions only', async () => {
        const at = new Date('2025-01-01T10:30:00.000Z');
        await store.createSession(session('ses_active'));
        await store.createSession(session('ses_expired', { expiresAt: new Date('2025-01-01T10:29:59.999Z') }));
        await store.createSession(session('ses_at_expiry', { expiresAt: at }));
        await store.createSession(session('ses_revoked', { revokedAt: new Date('2025-01-01T10:10:00.000Z') }));
        await store.createSession(session('ses_older', { createdAt: new Date('2025-01-01T09:00:00.000Z') }));

        const active = await store.listSessions({ activeAt: at });
        const all = await store.listSessions({});

        assert.deepEqual(
          active.map((s) => s.id),
          ['ses_older', 'ses_active'],
        );
        assert.deepEqual(
          all.map((s) => s.id),
          ['ses_older', 'ses_active', 'ses_at_expiry', 'ses_expired', 'ses_revoked'],
        );
      });
    });

    describe('audit', () => {
      it('round-trips every field', async () => {
        const minted = auditEvent({
          kind: 'mint',
          decision: 'error',
          errorCode: 'credential_unavailable',
          sessionId: null,
          channel: null,
          method: null,
          host: null,
          port: null,
          path: null,
          status: 400,
          bytesIn: null,
          bytesOut: null,
          durationMs: null,
          subject: 'integration@example.com',
          clientAddress: null,
          thread: '1700000000.000100',
        });

        await store.appendAudit([auditEvent(), minted]);

        const events = await store.queryAudit({});
        assert.equal(events.length, 2);
        const [first, second] = events;
        assert.ok(first);
        assert.ok(second);
        assert.equal(typeof first.id, 'number');
        assert.equal(second.id, (first.id ?? 0) + 1);
        assert.deepEqual({ ...first, id: undefined }, { ...auditEvent(), id: undefined });
        assert.deepEqual({ ...second, id: undefined }, { ...minted, id: undefined });
      });

      it('ignores a given id', async () => {
        await store.appendAudit([auditEvent({ id: 999 })]);

        const [event] = await store.queryAudit({});

        assert.notEqual(event?.id, 999);
      });

      it('accepts an empty batch', async () => {
        await store.appendAudit([]);

        assert.deepEqual(await store.queryAudit({}), []);
      });

      it('filters by each query field', async () => {
        const minute = (m: number): Date => new Date(Date.UTC(2025, 0, 1, 10, m));
        await store.appendAudit([
          auditEvent({ time: minute(0), path: '/a' }),
          auditEvent({ time: minute(1), path: '/b', channel: 'C0OPS', sessionId: 'ses_2' }),
          auditEvent({ time: minute(2), path: '/c', bundle: 'ops', credential: 'pagerduty' }),
          auditEvent({ time: minute(3), path: '/d', decision: 'denied', errorCode: 'egress_denied' }),
          auditEvent({ time: minute(4), path: '/e', channel: null, credential: null, bundle: null }),
        ]);
        const cases: [string, Parameters<Store['queryAudit']>[0], string[]][] = [
          ['since', { since: minute(3) }, ['/d', '/e']],
          ['until', { until: minute(1) }, ['/a']],
          ['since and until', { since: minute(1), until: minute(3) }, ['/b', '/c']],
          ['channel', { channel: 'C0OPS' }, ['/b']],
          ['bundle', { bundle: 'ops' }, ['/c']],
          ['credential', { credential: 'salesforce' }, ['/a', '/b', '/d']],
          ['decision', { decision: 'denied' }, ['/d']],
          ['sessionId', { sessionId: 'ses_2' }, ['/b']],
          ['channel and decision', { channel: 'C0SALES', decision: 'allowed' }, ['/a', '/c']],
          ['no match', { channel: 'C0NONE' }, []],
        ];

        for (const [label, query, paths] of cases) {
          const events = await store.queryAudit(query);

          assert.deepEqual(
            events.map((e) => e.path),
            paths,
            label,
          );
        }
      });

      it('pages forward after an id', async () => {
        await store.appendAudit([1, 2, 3, 4, 5].map((n) => auditEvent({ path: `/${n}` })));
        const all = await store.queryAudit({});
        const secondId = all[1]?.id;
        assert.ok(secondId !== undefined);

        const page = await store.queryAudit({ afterId: secondId, limit: 2 });

        assert.deepEqual(
          page.map((e) => e.path),
          ['/3', '/4'],
        );
      });

      it('returns the newest events ascending', async () => {
        await store.appendAudit([1, 2, 3, 4, 5].map((n) => auditEvent({ path: `/${n}` })));

        const events = await store.queryAudit({ limit: 2 });

        assert.deepEqual(
          events.map((e) => e.path),
          ['/4', '/5'],
        );
      });

      it('applies the default and maximum limits', async () => {
        await store.appendAudit(Array.from({ length: 1005 }, (_, n) => auditEvent({ path: `/${n}` })));

        const byDefault = await store.queryAudit({});
        const capped = await store.queryAudit({ limit: 5000 });

        assert.equal(byDefault.length, 100);
        assert.equal(byDefault[0]?.path, '/905');
        assert.equal(byDefault[99]?.path, '/1004');
        assert.equal(capped.length, 1000);
        assert.equal(capped[0]?.path, '/5');
      });

      it('rejects an invalid limit', async () => {
        for (const limit of [0, -1, 2.5]) {
          await assert.rejects(store.queryAudit({ limit }), {
            name: 'RangeError',
            message: `Invalid audit limit ${limit}; pass an integer from 1 to 1000.`,
          });
        }
      });
    });
  });
}

function stripIds(config: ProxyConfig): ProxyConfig {
  return {
    egress: config.egress,
    bundles: config.bundles.map((b) => ({
      ...b,
      id: '',
      credentials: b.credentials.map((c) => ({ ...c, id: '', bundleId: '' })),
    })),
  };
}
