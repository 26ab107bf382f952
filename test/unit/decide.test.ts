import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Bundle, Credential, EgressPolicy } from '../../src/domain/types.ts';
import { compileConfig } from '../../src/policy/compiledConfig.ts';
import { decideTarget, type TargetDecision } from '../../src/policy/decide.ts';

function credential(name: string, allowedWebsites: string[]): Credential {
  return {
    id: `cred_${name}`,
    bundleId: '',
    name,
    settings: { type: 'bearer_token' },
    secrets: { token: `${name}-secret` },
    allowedWebsites,
    access: 'read_write',
    rules: [],
    extraHeaders: {},
  };
}

function bundle(name: string, channels: string[], credentials: Credential[]): Bundle {
  return { id: `bun_${name}`, name, description: '', channels, credentials };
}

function decide(egress: Partial<EgressPolicy>, bundles: Bundle[], channel: string, host: string, port = 443, scheme: 'https' | 'http' = 'https'): TargetDecision {
  const config = compileConfig({ egress: { default: 'allow', allow: [], allowPrivateNetworks: [], ...egress }, bundles });
  return decideTarget(config, { channel, host, port, scheme });
}

function summary(decision: TargetDecision): string {
  if (decision.kind === 'intercept') return `intercept ${decision.credential.name}`;
  if (decision.kind === 'deny') return `deny ${decision.error.code}`;
  return 'tunnel';
}

describe('decideTarget', () => {
  const sales = bundle('sales', ['C0SALES'], [credential('github', ['api.github.com']), credential('wild', ['*.example.com'])]);
  const everyone = bundle('everyone', ['*'], [credential('exact', ['api.example.com'])]);

  const cases: Array<[string, Partial<EgressPolicy>, Bundle[], string, string, number, 'https' | 'http', string]> = [
    ['a channel in scope gets the credential of its host', {}, [sales], 'C0SALES', 'api.github.com', 443, 'https', 'intercept github'],
    ['a channel outside the scope is tunnelled without credential', {}, [sales], 'C0OTHER', 'api.github.com', 443, 'https', 'tunnel'],
    ['a neighbouring host is tunnelled', {}, [sales], 'C0SALES', 'github.com', 443, 'https', 'tunnel'],
    ['another port than the pattern names is tunnelled', {}, [sales], 'C0SALES', 'api.github.com', 8443, 'https', 'tunnel'],
    ['plain http never gets a credential', {}, [sales], 'C0SALES', 'api.github.com', 80, 'http', 'tunnel'],
    ['a bundle for every channel applies to any channel', {}, [everyone], 'C0ANY', 'api.example.com', 443, 'https', 'intercept exact'],
    ['an exact pattern beats a wildcard of another bundle', {}, [sales, everyone], 'C0SALES', 'api.example.com', 443, 'https', 'intercept exact'],
    ['the wildcard applies where the exact pattern does not', {}, [sales, everyone], 'C0SALES', 'www.example.com', 443, 'https', 'intercept wild'],
    ['default deny refuses a host off the allow list', { default: 'deny' }, [], 'C0SALES', 'pypi.test', 443, 'https', 'deny egress_denied'],
    ['default deny relays a host on the allow list', { default: 'deny', allow: ['pypi.test'] }, [], 'C0SALES', 'pypi.test', 443, 'https', 'tunnel'],
    ['default deny still intercepts a credentialed host', { default: 'deny' }, [sales], 'C0SALES', 'api.github.com', 443, 'https', 'intercept github'],
    ['default deny refuses a credentialed host for a channel outside the scope', { default: 'deny' }, [sales], 'C0OTHER', 'api.github.com', 443, 'https', 'deny egress_denied'],
  ];

  for (const [name, egress, bundles, channel, host, port, scheme, expected] of cases) {
    test(name, () => {
      assert.equal(summary(decide(egress, bundles, channel, host, port, scheme)), expected);
    });
  }

  test('equally specific matches are ambiguous and named', () => {
    const twin = bundle('twin', ['C0SALES'], [credential('github-two', ['api.github.com'])]);
    const decision = decide({}, [sales, twin], 'C0SALES', 'api.github.com');

    assert.equal(decision.kind, 'deny');
    assert.ok(decision.kind === 'deny');
    assert.equal(decision.error.code, 'ambiguous_credential');
    assert.equal(decision.error.status, 409);
    assert.deepEqual(decision.error.extensions.credentials, ['github', 'github-two']);
    assert.match(decision.error.detail, /"github" \(bundle "sales"\) and "github-two" \(bundle "twin"\)/);
  });

  test('egress refusal names the host and says it is a policy decision', () => {
    const decision = decide({ default: 'deny' }, [], 'C0SALES', 'pypi.test');

    assert.ok(decision.kind === 'deny');
    assert.match(decision.error.detail, /pypi\.test:443/);
    assert.match(decision.error.detail, /policy decision, not a network fault/);
    assert.match(decision.error.detail, /administrator/);
  });
});
