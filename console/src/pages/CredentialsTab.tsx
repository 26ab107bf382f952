// The Credentials tab: the bundle's credentials with their secrets shown only as
// fingerprints, and the ways to add one.

import { useState } from 'react';
import type { BundleDetail, BundleSummary } from '../api.ts';
import { Link } from '../components/Link.tsx';
import { takeFlash } from '../flash.ts';
import { CredentialRow } from './CredentialRow.tsx';

export function CredentialsTab({ bundle, allBundles, onChanged }: { bundle: BundleDetail; allBundles: BundleSummary[]; onChanged: () => Promise<void> }) {
  const [flash] = useState(() => takeFlash());
  const base = `/bundles/${encodeURIComponent(bundle.id)}/credentials`;
  return (
    <>
      {flash && (
        <div className="notice notice-ok" role="status">
          {flash}
        </div>
      )}
      <div className="toolbar">
        <Link to={`${base}/new`} className="button primary">
          Connect another app
        </Link>
        <Link to={`${base}/preset`} className="button">
          Add from preset
        </Link>
      </div>
      {bundle.credentials.length === 0 ? (
        <p className="empty">This bundle has no credentials yet. Add one from a preset, or connect another app by choosing its credential type.</p>
      ) : (
        <div className="table-scroll">
          <table className="credentials">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Allowed websites</th>
                <th scope="col">Access</th>
                <th scope="col">Last used</th>
                <th scope="col">Last mint</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            {bundle.credentials.map((credential) => (
              <CredentialRow key={credential.id} credential={credential} bundle={bundle} allBundles={allBundles} onChanged={onChanged} />
            ))}
          </table>
        </div>
      )}
    </>
  );
}
