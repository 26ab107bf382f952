// Domains under which many unrelated customers each get their own host. A credential
// allowed on `*.<one of these>` would be injected into every other customer's host
// too, so the owner of another tenant's site could read one tenant's token.
//
// Sources: the vendors' documented tenant host formats (Salesforce My Domain
// `name.my.salesforce.com`, Atlassian Cloud `site.atlassian.net`, Zendesk
// `subdomain.zendesk.com`, …), and entries of the private section of the Public
// Suffix List (https://publicsuffix.org/list/public_suffix_list.dat), where hosting
// providers register the domains under which their customers publish.
// NOTE: this is a curated subset, not the whole list; a domain missing here is not
// checked, so reviewers should still read every wildcard in a bundles file.

const VENDOR_TENANT_DOMAINS = [
  'my.salesforce.com',
  'sandbox.my.salesforce.com',
  'force.com',
  'lightning.force.com',
  'my.site.com',
  'atlassian.net',
  'jira.com',
  'zendesk.com',
  'freshdesk.com',
  'service-now.com',
  'slack.com',
  'sharepoint.com',
  'visualstudio.com',
  'myshopify.com',
  'auth0.com',
  'onelogin.com',
  'looker.com',
  'snowflakecomputing.com',
  'databricks.com',
  'azuredatabricks.net',
];

const PUBLIC_SUFFIX_LIST_PRIVATE_DOMAINS = [
  'github.io',
  'githubusercontent.com',
  'gitlab.io',
  'herokuapp.com',
  'herokussl.com',
  'appspot.com',
  'blogspot.com',
  'web.app',
  'firebaseapp.com',
  'cloudfunctions.net',
  'run.app',
  'azurewebsites.net',
  'azurestaticapps.net',
  'cloudapp.net',
  'cloudfront.net',
  's3.amazonaws.com',
  'elasticbeanstalk.com',
  'netlify.app',
  'vercel.app',
  'pages.dev',
  'workers.dev',
  'r2.dev',
  'fly.dev',
  'onrender.com',
  'glitch.me',
  'ngrok.io',
  'ngrok.app',
  'repl.co',
  'readthedocs.io',
  'surge.sh',
  'wixsite.com',
  'translate.goog',
];

/** Lower-case domains shared by many tenants, each without a leading `*.` or trailing dot. */
export const MULTI_TENANT_SUFFIXES: ReadonlySet<string> = new Set([...VENDOR_TENANT_DOMAINS, ...PUBLIC_SUFFIX_LIST_PRIVATE_DOMAINS]);

/**
 * Returns the shared domain whose tenants a wildcard over `domain` (the part after `*.`,
 * normalized) would cover, or null. Both `*.atlassian.net` and a wider `*.salesforce.com`
 * (which contains my.salesforce.com) cover other tenants; `*.acme.atlassian.net` does not.
 */
export function findSharedDomainUnderWildcard(domain: string): string | null {
  if (MULTI_TENANT_SUFFIXES.has(domain)) {
    return domain;
  }
  for (const suffix of MULTI_TENANT_SUFFIXES) {
    if (suffix.endsWith(`.${domain}`)) {
      return suffix;
    }
  }
  return null;
}
