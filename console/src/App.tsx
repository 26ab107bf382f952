// The console's shell: the session check, the navigation bar and the page for the address.

import { useCallback, useEffect, useState } from 'react';
import { api, onUnauthorized, setCsrfToken } from './api.ts';
import { Link } from './components/Link.tsx';
import { ActivityPage } from './pages/ActivityPage.tsx';
import { BundlePage } from './pages/BundlePage.tsx';
import { BundlesPage } from './pages/BundlesPage.tsx';
import { ConnectAppPage, EditCredentialPage } from './pages/ConnectAppPage.tsx';
import { LoginPage } from './pages/LoginPage.tsx';
import { PresetPage } from './pages/PresetPage.tsx';
import { SessionsPage } from './pages/SessionsPage.tsx';
import { matchPath, navigate, usePathname } from './router.ts';

type AuthState = 'checking' | 'signed-out' | 'signed-in';

function Page({ pathname }: { pathname: string }) {
  let params: Record<string, string> | null;
  if ((params = matchPath('/bundles/:id/credentials/new', pathname))) return <ConnectAppPage bundleId={params.id!} />;
  if ((params = matchPath('/bundles/:id/credentials/preset', pathname))) return <PresetPage bundleId={params.id!} />;
  if ((params = matchPath('/bundles/:id/credentials/:credentialId/edit', pathname))) return <EditCredentialPage bundleId={params.id!} credentialId={params.credentialId!} />;
  if ((params = matchPath('/bundles/:id/scope', pathname))) return <BundlePage key={params.id} bundleId={params.id!} tab="scope" />;
  if ((params = matchPath('/bundles/:id/credentials', pathname)) || (params = matchPath('/bundles/:id', pathname))) {
    return <BundlePage key={params.id} bundleId={params.id!} tab="credentials" />;
  }
  if (pathname === '/activity') return <ActivityPage />;
  if (pathname === '/sessions') return <SessionsPage />;
  if (pathname === '/' || pathname === '/bundles' || pathname === '/login') return <BundlesPage />;
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        Nothing is at {pathname}. <Link to="/bundles">Go to access bundles</Link>.
      </p>
    </section>
  );
}

export function App() {
  const pathname = usePathname();
  const [auth, setAuth] = useState<AuthState>('checking');

  const checkSession = useCallback(async () => {
    try {
      const me = await api<{ authenticated: boolean; csrfToken: string | null }>('GET', '/me');
      setCsrfToken(me.csrfToken);
      setAuth(me.authenticated ? 'signed-in' : 'signed-out');
    } catch {
      setAuth('signed-out');
    }
  }, []);

  useEffect(() => {
    void checkSession();
    return onUnauthorized(() => {
      setCsrfToken(null);
      setAuth('signed-out');
    });
  }, [checkSession]);

  const logout = async () => {
    try {
      await api('POST', '/logout');
    } finally {
      setCsrfToken(null);
      setAuth('signed-out');
    }
  };

  if (auth === 'checking') return <p className="loading">Loading…</p>;
  if (auth === 'signed-out') {
    return (
      <LoginPage
        onLoggedIn={() => {
          setAuth('signed-in');
          if (pathname === '/' || pathname === '/login') navigate('/bundles', { replace: true });
        }}
      />
    );
  }

  const section = pathname.startsWith('/activity') ? 'activity' : pathname.startsWith('/sessions') ? 'sessions' : 'bundles';
  return (
    <>
      <header className="topbar">
        <span className="brand">Agent Proxy</span>
        <nav aria-label="Main">
          <Link to="/bundles" current={section === 'bundles'}>
            Access bundles
          </Link>
          <Link to="/activity" current={section === 'activity'}>
            Activity
          </Link>
          <Link to="/sessions" current={section === 'sessions'}>
            Sessions
          </Link>
        </nav>
        <button type="button" className="link-button signout" onClick={logout}>
          Sign out
        </button>
      </header>
      <main className="content">
        <Page pathname={pathname} />
      </main>
    </>
  );
}
