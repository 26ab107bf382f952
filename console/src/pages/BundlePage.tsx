// One access bundle, with its Scope and Credentials tabs as separate addresses.

import { useCallback, useEffect, useState } from 'react';
import { api, type BundleDetail, type BundleSummary } from '../api.ts';
import { ErrorNotice } from '../components/Field.tsx';
import { Link } from '../components/Link.tsx';
import { CredentialsTab } from './CredentialsTab.tsx';
import { ScopeTab } from './ScopeTab.tsx';

export function BundlePage({ bundleId, tab }: { bundleId: string; tab: 'scope' | 'credentials' }) {
  const [bundle, setBundle] = useState<BundleDetail | null>(null);
  const [allBundles, setAllBundles] = useState<BundleSummary[]>([]);
  const [error, setError] = useState<unknown>(null);

  const reload = useCallback(async () => {
    try {
      const [detail, list] = await Promise.all([
        api<BundleDetail>('GET', `/bundles/${encodeURIComponent(bundleId)}`),
        api<{ bundles: BundleSummary[] }>('GET', '/bundles'),
      ]);
      setBundle(detail);
      setAllBundles(list.bundles);
      setError(null);
    } catch (caught) {
      setError(caught);
    }
  }, [bundleId]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const base = `/bundles/${encodeURIComponent(bundleId)}`;
  return (
    <section>
      <nav className="breadcrumb" aria-label="Breadcrumb">
        <Link to="/bundles">Access bundles</Link> › {bundle?.name ?? '…'}
      </nav>
      <h1>{bundle ? bundle.name : 'Access bundle'}</h1>
      {bundle?.description && <p className="lead">{bundle.description}</p>}
      <ErrorNotice error={error} />
      <nav className="tabs" aria-label="Bundle sections">
        <Link to={`${base}/scope`} className="tab" current={tab === 'scope'}>
          Scope
        </Link>
        <Link to={`${base}/credentials`} className="tab" current={tab === 'credentials'}>
          Credentials{bundle ? ` (${bundle.credentials.length})` : ''}
        </Link>
      </nav>
      {bundle && tab === 'scope' && <ScopeTab bundle={bundle} onSaved={reload} />}
      {bundle && tab === 'credentials' && <CredentialsTab bundle={bundle} allBundles={allBundles} onChanged={reload} />}
    </section>
  );
}
