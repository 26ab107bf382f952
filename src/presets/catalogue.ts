// The preset catalogue: one entry per well-known app, as data. presets.ts reads it.
// Header names, version values, token URLs, hosts and probe endpoints follow each
// provider's API documentation. Allowed websites never put a wildcard directly under a
// domain that many customers share (such as my.salesforce.com, atlassian.net or
// zendesk.com), because the credential would then go to other organisations' sites.

import type { Preset } from './presets.ts';

const SALESFORCE_PRODUCTION_AUDIENCE = 'https://login.salesforce.com';
const SALESFORCE_SANDBOX_AUDIENCE = 'https://test.salesforce.com';

// Accepts "acme.atlassian.net", "https://acme.atlassian.net/jira/…" and similar pastes of a site URL.
const URL_TAIL = '(?:[/:?#].*)?';

const salesforce: Preset = {
  id: 'salesforce',
  name: 'Salesforce',
  description: 'Salesforce REST API as an integration user, through a Connected App with the OAuth 2.0 JWT bearer flow.',
  type: 'oauth2_jwt_bearer',
  setupGuideUrl: 'https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm&type=5',
  fields: [
    {
      name: 'environment',
      label: 'Environment',
      help: 'Production orgs log in at login.salesforce.com and sandboxes at test.salesforce.com. Choose a My Domain login when the org blocks logins from those hosts.',
      secret: false,
      required: true,
      kind: 'select',
      options: [
        {
          value: 'production',
          label: 'Production (login.salesforce.com)',
          sets: { loginHost: 'login.salesforce.com', instanceHost: '{instance}.my.salesforce.com', audience: SALESFORCE_PRODUCTION_AUDIENCE },
        },
        {
          value: 'sandbox',
          label: 'Sandbox (test.salesforce.com)',
          sets: { loginHost: 'test.salesforce.com', instanceHost: '{instance}.sandbox.my.salesforce.com', audience: SALESFORCE_SANDBOX_AUDIENCE },
        },
        {
          value: 'my_domain',
          label: 'Production, log in through My Domain',
          sets: { loginHost: '{instance}.my.salesforce.com', instanceHost: '{instance}.my.salesforce.com', audience: SALESFORCE_PRODUCTION_AUDIENCE },
        },
        {
          value: 'sandbox_my_domain',
          label: 'Sandbox, log in through My Domain',
          sets: {
            loginHost: '{instance}.sandbox.my.salesforce.com',
            instanceHost: '{instance}.sandbox.my.salesforce.com',
            audience: SALESFORCE_SANDBOX_AUDIENCE,
          },
        },
      ],
    },
    {
      name: 'instance',
      label: 'My Domain name',
      help: 'Setup → My Domain shows it. For https://acme.my.salesforce.com it is acme, and for a sandbox such as https://acme--uat.sandbox.my.salesforce.com it is acme--uat.',
      example: 'acme',
      pattern: '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$',
      patternHint: 'the My Domain name alone, such as acme (or acme--uat for a sandbox), from Setup → My Domain',
      secret: false,
      required: true,
      kind: 'text',
      lowercase: true,
      rejections: [
        {
          pattern: `(?:https?://)?([a-z0-9-]+)\\.sandbox\\.lightning\\.force\\.com${URL_TAIL}`,
          message: 'that is the Lightning UI host; give the My Domain name ($1), whose API host is $1.sandbox.my.salesforce.com',
        },
        {
          pattern: `(?:https?://)?([a-z0-9-]+)\\.lightning\\.force\\.com${URL_TAIL}`,
          message: 'that is the Lightning UI host; give the My Domain name ($1), whose API host is $1.my.salesforce.com',
        },
        {
          pattern: `(?:https?://)?(login|test)\\.salesforce\\.com${URL_TAIL}`,
          message: 'that is the login host every org shares; give your org\'s My Domain name, shown in Setup → My Domain, and choose the environment for the login host',
        },
      ],
      // NOTE: a sandbox host pasted while the environment is production is reduced to its
      // name all the same, so the credential then targets {name}.my.salesforce.com.
      rewrites: [{ pattern: `(?:https?://)?([a-z0-9-]+)(?:\\.sandbox)?\\.my\\.salesforce\\.com${URL_TAIL}`, replacement: '$1' }],
    },
    {
      name: 'consumerKey',
      label: 'Consumer key',
      help: 'The Connected App\'s consumer key: Setup → App Manager → the app → View → Manage Consumer Details.',
      example: '3MVG9…',
      pattern: '^[A-Za-z0-9._]+$',
      patternHint: 'the consumer key as shown under Manage Consumer Details, without spaces',
      secret: false,
      required: true,
      kind: 'text',
      target: 'issuer',
    },
    {
      name: 'username',
      label: 'Integration username',
      help: 'Username of the Salesforce user the agent acts as. Its profile or a permission set must be pre-authorised on the Connected App.',
      example: 'integration@acme.example',
      pattern: '^[^\\s@]+@[^\\s@]+$',
      patternHint: 'the Salesforce username, which has the form of an email address',
      secret: false,
      required: true,
      kind: 'text',
      target: 'subject',
    },
    {
      name: 'privateKey',
      label: 'Private key',
      help: 'PEM private key (RSA, 2048 bits or more) whose certificate is uploaded to the Connected App under "Use digital signatures".',
      secret: true,
      required: true,
      kind: 'pem',
      target: 'privateKey',
    },
  ],
  allowedWebsitesTemplate: ['{instanceHost}'],
  extraHeaders: {},
  // Salesforce expects the login host as the audience even when the token URL is the org's My Domain.
  defaults: { provider: 'salesforce', audience: '{audience}' },
  probe: { method: 'GET', url: 'https://{instanceHost}/services/oauth2/userinfo', identityFields: ['preferred_username', 'user_id', 'organization_id'] },
  tokenUrlTemplate: 'https://{loginHost}/services/oauth2/token',
};

const google: Preset = {
  id: 'google-service-account',
  name: 'Google service account',
  description: 'Google Cloud and Workspace APIs as a service account, optionally acting for a Workspace user through domain-wide delegation.',
  type: 'oauth2_jwt_bearer',
  setupGuideUrl: 'https://developers.google.com/identity/protocols/oauth2/service-account',
  fields: [
    {
      name: 'keyFile',
      label: 'Service account key file',
      help: 'The JSON key file of the service account: Google Cloud console → IAM & Admin → Service Accounts → the account → Keys → Add key → JSON. Paste the whole file.',
      secret: true,
      required: true,
      kind: 'textarea',
      json: {
        description: 'a Google service account key file',
        kindKey: 'type',
        kindValue: 'service_account',
        kindMessages: {
          authorized_user:
            'this is a user credential (type "authorized_user", as gcloud auth application-default login writes), not a service account key; create a JSON key for a service account and paste that',
          external_account:
            'this is a workload identity federation configuration (type "external_account"), which holds no private key; create a JSON key for a service account and paste that',
        },
        otherKindMessage:
          'this JSON is not a service account key (its "type" is {kind}, not "service_account"); an OAuth client file has "installed" or "web" at the top instead. Create a JSON key for a service account and paste that',
        keys: [
          { key: 'client_email', required: true, pattern: '^[^\\s@]+@[^\\s@]+$', patternHint: 'it should be the service account\'s email address' },
          { key: 'private_key', required: true },
          { key: 'private_key_id', required: false },
          {
            key: 'token_uri',
            required: false,
            default: 'https://oauth2.googleapis.com/token',
            pattern: '^https://(?:oauth2\\.googleapis\\.com/token|accounts\\.google\\.com/o/oauth2/token)$',
            patternHint: 'Google\'s token endpoint is https://oauth2.googleapis.com/token',
          },
        ],
      },
    },
    {
      name: 'scopes',
      label: 'Scopes',
      help: 'OAuth scopes the agent needs, separated by spaces, such as https://www.googleapis.com/auth/cloud-platform or https://www.googleapis.com/auth/drive.readonly.',
      example: 'https://www.googleapis.com/auth/cloud-platform',
      pattern: '^[^\\s,]+(?: [^\\s,]+)*$',
      patternHint: 'the scopes separated by spaces, without commas',
      secret: false,
      required: true,
      kind: 'text',
      target: 'scope',
    },
    {
      name: 'delegatedUser',
      label: 'User to act as (domain-wide delegation)',
      help: 'Optional. The email of the Workspace user the service account acts for; the service account\'s client ID must be granted these scopes in the Admin console under domain-wide delegation.',
      example: 'agent@acme.example',
      pattern: '^[^\\s@]+@[^\\s@]+$',
      patternHint: 'the user\'s email address',
      secret: false,
      required: false,
      kind: 'text',
      target: 'subject',
    },
  ],
  // Google serves every host under googleapis.com itself (a Cloud Storage bucket name may appear as a
  // subdomain, but Google's servers serve it), so the token never reaches another party's server.
  allowedWebsitesTemplate: ['*.googleapis.com'],
  extraHeaders: {},
  defaults: { provider: 'google', issuer: '{client_email}', privateKey: '{private_key}', keyId: '{private_key_id}' },
  probe: null,
  tokenUrlTemplate: '{token_uri}',
};

const microsoftGraph: Preset = {
  id: 'microsoft-graph',
  name: 'Microsoft Graph',
  description: 'Microsoft 365 data through Microsoft Graph with an app registration\'s own application permissions (client credentials).',
  type: 'oauth2_client_credentials',
  setupGuideUrl: 'https://learn.microsoft.com/en-us/graph/auth-v2-service',
  fields: [
    {
      name: 'tenant',
      label: 'Directory (tenant) ID',
      help: 'Microsoft Entra admin center → App registrations → the app → Overview. A verified domain such as contoso.onmicrosoft.com also works.',
      example: '00000000-0000-0000-0000-000000000000',
      pattern: '^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9-]+(?:\\.[a-z0-9-]+)+)$',
      patternHint: 'the Directory (tenant) ID, a GUID from the app registration\'s Overview page, or a verified domain such as contoso.onmicrosoft.com (not "common" or "organizations", which the client credentials flow does not accept)',
      secret: false,
      required: true,
      kind: 'text',
      lowercase: true,
    },
    {
      name: 'clientId',
      label: 'Application (client) ID',
      help: 'App registrations → the app → Overview.',
      example: '00000000-0000-0000-0000-000000000000',
      pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$',
      patternHint: 'the Application (client) ID, a GUID from the app registration\'s Overview page',
      secret: false,
      required: true,
      kind: 'text',
      target: 'clientId',
    },
    {
      name: 'clientSecret',
      label: 'Client secret value',
      help: 'App registrations → the app → Certificates & secrets → New client secret. Copy the Value column, not the Secret ID.',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'clientSecret',
    },
  ],
  allowedWebsitesTemplate: ['graph.microsoft.com'],
  extraHeaders: {},
  defaults: { scope: 'https://graph.microsoft.com/.default', clientAuthMethod: 'body' },
  // NOTE: an app-only token cannot call /me, and other Graph endpoints need an application permission the app may lack, so only the token mint is tested.
  probe: null,
  tokenUrlTemplate: 'https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token',
};

const github: Preset = {
  id: 'github',
  name: 'GitHub',
  description: 'GitHub REST and GraphQL APIs with a personal access token (fine-grained or classic).',
  type: 'bearer_token',
  setupGuideUrl: 'https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens',
  fields: [
    {
      name: 'token',
      label: 'Personal access token',
      help: 'GitHub → Settings → Developer settings → Personal access tokens. Fine-grained tokens start with github_pat_, classic ones with ghp_.',
      pattern: '^(?:github_pat_[A-Za-z0-9_]+|gh[pousr]_[A-Za-z0-9]+)$',
      patternHint: 'a GitHub token, which starts with github_pat_ (fine-grained) or ghp_ (classic)',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['api.github.com'],
  extraHeaders: { 'X-GitHub-Api-Version': '2022-11-28' },
  defaults: {},
  probe: { method: 'GET', url: 'https://api.github.com/user', identityFields: ['login', 'id'] },
};

const slack: Preset = {
  id: 'slack',
  name: 'Slack',
  description: 'Slack Web API as a Slack app\'s bot user.',
  type: 'bearer_token',
  setupGuideUrl: 'https://docs.slack.dev/authentication/tokens',
  fields: [
    {
      name: 'token',
      label: 'Bot User OAuth Token',
      help: 'api.slack.com/apps → the app → OAuth & Permissions → Bot User OAuth Token, after installing the app to the workspace.',
      pattern: '^xoxb-[A-Za-z0-9-]+$',
      patternHint: 'the Bot User OAuth Token, which starts with xoxb- (a user token starts with xoxp-)',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['slack.com'],
  extraHeaders: {},
  defaults: {},
  // auth.test is documented as POST, but every Web API method also takes its arguments as a GET query string.
  probe: { method: 'GET', url: 'https://slack.com/api/auth.test', identityFields: ['user', 'user_id', 'team', 'team_id', 'url'] },
};

const anthropic: Preset = {
  id: 'anthropic',
  name: 'Anthropic',
  description: 'Claude models through the Anthropic API.',
  type: 'api_key',
  setupGuideUrl: 'https://docs.anthropic.com/en/api/getting-started',
  fields: [
    {
      name: 'apiKey',
      label: 'API key',
      help: 'Anthropic Console → Settings → API keys.',
      pattern: '^sk-ant-[A-Za-z0-9_-]+$',
      patternHint: 'an Anthropic API key, which starts with sk-ant-',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'value',
    },
  ],
  allowedWebsitesTemplate: ['api.anthropic.com'],
  extraHeaders: { 'anthropic-version': '2023-06-01' },
  defaults: { headerName: 'x-api-key' },
  // The API has no identity endpoint for a key; listing models shows that the key works.
  probe: { method: 'GET', url: 'https://api.anthropic.com/v1/models' },
};

const openai: Preset = {
  id: 'openai',
  name: 'OpenAI',
  description: 'OpenAI API models and endpoints.',
  type: 'bearer_token',
  setupGuideUrl: 'https://platform.openai.com/api-keys',
  fields: [
    {
      name: 'apiKey',
      label: 'API key',
      help: 'OpenAI Platform → API keys. Project keys start with sk-proj-.',
      pattern: '^sk-[A-Za-z0-9_-]+$',
      patternHint: 'an OpenAI secret key, which starts with sk-',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['api.openai.com'],
  extraHeaders: {},
  defaults: {},
  // The API has no identity endpoint for a key; listing models shows that the key works.
  probe: { method: 'GET', url: 'https://api.openai.com/v1/models' },
};

const atlassian: Preset = {
  id: 'atlassian',
  name: 'Atlassian Jira and Confluence',
  description: 'Jira and Confluence Cloud REST APIs of one site, as an Atlassian account with an API token.',
  type: 'basic_auth',
  setupGuideUrl: 'https://support.atlassian.com/atlassian-account/docs/manage-api-tokens-for-your-atlassian-account/',
  fields: [
    {
      name: 'site',
      label: 'Site name',
      help: 'The first part of the site address: acme for https://acme.atlassian.net.',
      example: 'acme',
      pattern: '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$',
      patternHint: 'the site name alone, such as acme for https://acme.atlassian.net',
      secret: false,
      required: true,
      kind: 'text',
      lowercase: true,
      rewrites: [{ pattern: `(?:https?://)?([a-z0-9-]+)\\.atlassian\\.net${URL_TAIL}`, replacement: '$1' }],
    },
    {
      name: 'email',
      label: 'Atlassian account email',
      help: 'Email address of the Atlassian account that owns the API token.',
      example: 'agent@acme.example',
      pattern: '^[^\\s@:]+@[^\\s@:]+$',
      patternHint: 'the email address of the Atlassian account',
      secret: false,
      required: true,
      kind: 'text',
      target: 'username',
    },
    {
      name: 'apiToken',
      label: 'API token',
      help: 'id.atlassian.com → Security → Create and manage API tokens, signed in as that account.',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'password',
    },
  ],
  allowedWebsitesTemplate: ['{site}.atlassian.net'],
  extraHeaders: {},
  defaults: {},
  // Jira's current-user endpoint; a site without Jira returns 404 here although the token works for Confluence.
  probe: { method: 'GET', url: 'https://{site}.atlassian.net/rest/api/3/myself', identityFields: ['emailAddress', 'displayName', 'accountId'] },
};

const hubspot: Preset = {
  id: 'hubspot',
  name: 'HubSpot',
  description: 'HubSpot CRM and other APIs with a private app access token.',
  type: 'bearer_token',
  setupGuideUrl: 'https://developers.hubspot.com/docs/api/private-apps',
  fields: [
    {
      name: 'token',
      label: 'Private app access token',
      help: 'HubSpot → Settings → Integrations → Private Apps → the app → Auth → Access token. Only super admins can see it.',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['api.hubapi.com'],
  extraHeaders: {},
  defaults: {},
  probe: { method: 'GET', url: 'https://api.hubapi.com/account-info/v3/details', identityFields: ['portalId', 'uiDomain'] },
};

const stripe: Preset = {
  id: 'stripe',
  name: 'Stripe',
  description: 'Stripe API with a restricted key, which can do only what its permissions allow.',
  type: 'bearer_token',
  setupGuideUrl: 'https://docs.stripe.com/keys/restricted-api-keys',
  fields: [
    {
      name: 'restrictedKey',
      label: 'Restricted key',
      help: 'Stripe Dashboard → Developers → API keys → Create restricted key. A live key is shown only once.',
      pattern: '^rk_(?:live|test)_[A-Za-z0-9]+$',
      patternHint: 'a restricted key, which starts with rk_live_ or rk_test_ (a secret key, sk_, can do everything, so create a restricted key instead)',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['api.stripe.com'],
  extraHeaders: {},
  defaults: {},
  // NOTE: every Stripe endpoint needs a permission that a restricted key may lack, so only the key's format is checked.
  probe: null,
};

const notion: Preset = {
  id: 'notion',
  name: 'Notion',
  description: 'Notion API as an internal integration, on the pages shared with it.',
  type: 'bearer_token',
  setupGuideUrl: 'https://developers.notion.com/docs/authorization',
  fields: [
    {
      name: 'token',
      label: 'Internal integration secret',
      help: 'notion.so/my-integrations → the integration → Configuration → Internal Integration Secret. Share each page or database with the integration.',
      pattern: '^(?:ntn_|secret_)[A-Za-z0-9]+$',
      patternHint: 'the internal integration secret, which starts with ntn_ (or secret_ for older integrations)',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['api.notion.com'],
  extraHeaders: { 'Notion-Version': '2022-06-28' },
  defaults: {},
  probe: { method: 'GET', url: 'https://api.notion.com/v1/users/me', identityFields: ['name', 'id', 'bot.owner.type'] },
};

const linear: Preset = {
  id: 'linear',
  name: 'Linear',
  description: 'Linear GraphQL API with a personal API key.',
  type: 'api_key',
  setupGuideUrl: 'https://linear.app/developers/graphql',
  fields: [
    {
      name: 'apiKey',
      label: 'Personal API key',
      help: 'Linear → Settings → Account → Security & access → Personal API keys.',
      pattern: '^lin_api_[A-Za-z0-9]+$',
      patternHint: 'a personal API key, which starts with lin_api_',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'value',
    },
  ],
  allowedWebsitesTemplate: ['api.linear.app'],
  extraHeaders: {},
  // Linear takes a personal API key as the whole Authorization value, without "Bearer".
  defaults: { headerName: 'Authorization' },
  // The API is GraphQL over POST only, and a probe is a GET.
  probe: null,
};

const zendesk: Preset = {
  id: 'zendesk',
  name: 'Zendesk',
  description: 'Zendesk Support API of one account, with an agent\'s email address and an API token.',
  type: 'basic_auth',
  setupGuideUrl: 'https://developer.zendesk.com/api-reference/introduction/security-and-auth/',
  fields: [
    {
      name: 'subdomain',
      label: 'Zendesk subdomain',
      help: 'The first part of the account address: acme for https://acme.zendesk.com.',
      example: 'acme',
      pattern: '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$',
      patternHint: 'the subdomain alone, such as acme for https://acme.zendesk.com',
      secret: false,
      required: true,
      kind: 'text',
      lowercase: true,
      rewrites: [{ pattern: `(?:https?://)?([a-z0-9-]+)\\.zendesk\\.com${URL_TAIL}`, replacement: '$1' }],
    },
    {
      name: 'email',
      label: 'Agent email',
      help: 'Email address of the agent or admin the requests run as.',
      example: 'agent@acme.example',
      pattern: '^[^\\s@:/]+@[^\\s@:/]+$',
      patternHint: 'the email address of a Zendesk agent or admin',
      secret: false,
      required: true,
      kind: 'text',
    },
    {
      name: 'apiToken',
      label: 'API token',
      help: 'Admin Center → Apps and integrations → APIs → Zendesk API: turn on token access, then Add API token.',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'password',
    },
  ],
  allowedWebsitesTemplate: ['{subdomain}.zendesk.com'],
  extraHeaders: {},
  // An API token authenticates as the user name "{email}/token".
  defaults: { username: '{email}/token' },
  probe: { method: 'GET', url: 'https://{subdomain}.zendesk.com/api/v2/users/me.json', identityFields: ['user.email', 'user.name', 'user.role'] },
};

const gitlab: Preset = {
  id: 'gitlab',
  name: 'GitLab',
  description: 'GitLab REST and GraphQL APIs on GitLab.com or a self-managed instance, with a personal, project or group access token.',
  type: 'bearer_token',
  setupGuideUrl: 'https://docs.gitlab.com/ee/user/profile/personal_access_tokens.html',
  fields: [
    {
      name: 'host',
      label: 'GitLab host',
      help: 'gitlab.com, or the host name of a self-managed instance.',
      example: 'gitlab.com',
      pattern: '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$',
      patternHint: 'a host name such as gitlab.com or gitlab.acme.example, without https:// or a path',
      secret: false,
      required: true,
      kind: 'text',
      lowercase: true,
      rewrites: [{ pattern: `https?://([^/:?#]+)${URL_TAIL}`, replacement: '$1' }],
    },
    {
      name: 'token',
      label: 'Access token',
      help: 'User settings → Access tokens (or a project\'s or group\'s Settings → Access tokens), with the api or read_api scope.',
      pattern: '^glpat-[A-Za-z0-9_.-]+$',
      patternHint: 'a GitLab access token, which starts with glpat-',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['{host}'],
  extraHeaders: {},
  defaults: {},
  probe: { method: 'GET', url: 'https://{host}/api/v4/user', identityFields: ['username', 'id'] },
};

const twilio: Preset = {
  id: 'twilio',
  name: 'Twilio',
  description: 'Twilio REST API with an API key (or the account\'s Auth Token).',
  type: 'basic_auth',
  setupGuideUrl: 'https://www.twilio.com/docs/usage/your-request-to-twilio',
  fields: [
    {
      name: 'accountSid',
      label: 'Account SID',
      help: 'Twilio Console → Account Info. It starts with AC.',
      example: 'AC0123456789abcdef0123456789abcdef',
      pattern: '^AC[0-9a-fA-F]{32}$',
      patternHint: 'the Account SID: AC followed by 32 hexadecimal digits',
      secret: false,
      required: true,
      kind: 'text',
    },
    {
      name: 'apiKeySid',
      label: 'API key SID',
      help: 'Optional but recommended: Console → Account → API keys & tokens → Create API key. It starts with SK. Leave empty to use the Auth Token.',
      example: 'SK0123456789abcdef0123456789abcdef',
      pattern: '^SK[0-9a-fA-F]{32}$',
      patternHint: 'the API key SID: SK followed by 32 hexadecimal digits',
      secret: false,
      required: false,
      kind: 'text',
    },
    {
      name: 'secret',
      label: 'API key secret or Auth Token',
      help: 'The secret shown once when the API key was created, or the Auth Token from Account Info when no API key SID is given.',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'password',
    },
  ],
  allowedWebsitesTemplate: ['api.twilio.com'],
  extraHeaders: {},
  // Twilio takes an API key SID, or else the Account SID, as the Basic user name.
  defaults: { username: '{apiKeySid|accountSid}' },
  probe: { method: 'GET', url: 'https://api.twilio.com/2010-04-01/Accounts/{accountSid}.json', identityFields: ['sid', 'friendly_name', 'status'] },
};

const airtable: Preset = {
  id: 'airtable',
  name: 'Airtable',
  description: 'Airtable Web API with a personal access token, on the bases and scopes it grants.',
  type: 'bearer_token',
  setupGuideUrl: 'https://support.airtable.com/docs/creating-personal-access-tokens',
  fields: [
    {
      name: 'token',
      label: 'Personal access token',
      help: 'Airtable → Builder Hub → Personal access tokens → Create token, with the scopes and bases the agent needs.',
      pattern: '^pat[A-Za-z0-9.]+$',
      patternHint: 'a personal access token, which starts with pat',
      secret: true,
      required: true,
      kind: 'secret',
      target: 'token',
    },
  ],
  allowedWebsitesTemplate: ['api.airtable.com'],
  extraHeaders: {},
  defaults: {},
  probe: { method: 'GET', url: 'https://api.airtable.com/v0/meta/whoami', identityFields: ['id', 'email'] },
};

export const PRESET_CATALOGUE: readonly Preset[] = [
  salesforce,
  google,
  microsoftGraph,
  github,
  slack,
  anthropic,
  openai,
  atlassian,
  hubspot,
  stripe,
  notion,
  linear,
  zendesk,
  gitlab,
  twilio,
  airtable,
];
