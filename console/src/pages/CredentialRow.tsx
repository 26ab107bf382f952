// One credential in the Credentials table, with its actions. Each row is a <tbody> so
// that the Test connection result, the move form and the delete confirmation can take
// a full-width row of their own under it.

import { useState } from 'react';
import { api, type BundleDetail, type BundleSummary, type CredentialView, type TestConnectionResult } from '../api.ts';
import { credentialTypeTitle, secretFieldLabel } from '../credentialTypes.ts';
import { formatDateTime, shortFingerprint } from '../credentialBody.ts';
import { navigate } from '../router.ts';
import { TestConnectionResultView } from './TestConnectionResult.tsx';

type Panel = { kind: 'none' } | { kind: 'testing' } | { kind: 'tested'; result: TestConnectionResult } | { kind: 'move' } | { kind: 'delete' } | { kind: 'error'; message: string };

interface Props {
  credential: CredentialView;
  bundle: BundleDetail;
  allBundles: BundleSummary[];
  onChanged: () => Promise<void>;
}

function MintStatus({ credential }: { credential: CredentialView }) {
  const mint = credential.lastMint;
  if (!mint) return <>{credential.type.startsWith('oauth2_') ? 'no token yet' : 'no token needed'}</>;
  const outcome = mint.decision === 'allowed' ? 'ok' : [mint.error, mint.status].filter(Boolean).join(' ') || mint.decision;
  return (
    <>
      <div>{outcome}</div>
      <div className="when">{formatDateTime(mint.at)}</div>
    </>
  );
}

export function CredentialRow({ credential, bundle, allBundles, onChanged }: Props) {
  const [panel, setPanel] = useState<Panel>({ kind: 'none' });
  const otherBundles = allBundles.filter((candidate) => candidate.id !== bundle.id);
  const [targetBundle, setTargetBundle] = useState(otherBundles[0]?.id ?? '');
  const path = `/bundles/${encodeURIComponent(bundle.id)}/credentials/${encodeURIComponent(credential.id)}`;
  const failure = (error: unknown) => setPanel({ kind: 'error', message: error instanceof Error ? error.message : String(error) });

  const testConnection = async () => {
    setPanel({ kind: 'testing' });
    try {
      const result = await api<TestConnectionResult>('POST', `${path}/test-connection`);
      setPanel({ kind: 'tested', result });
      await onChanged();
    } catch (error) {
      failure(error);
    }
  };

  const move = async () => {
    try {
      await api('POST', `${path}/move`, { bundleId: targetBundle });
      setPanel({ kind: 'none' });
      await onChanged();
    } catch (error) {
      failure(error);
    }
  };

  const remove = async () => {
    try {
      await api('DELETE', path);
      await onChanged();
    } catch (error) {
      failure(error);
    }
  };

  const secrets = Object.entries(credential.secrets).filter(([, secret]) => secret.set);
  return (
    <tbody className="credential-row" data-credential={credential.name}>
      <tr>
        <th scope="row">
          <div className="credential-name">{credential.name}</div>
          {secrets.map(([name, secret]) => (
            <div key={name} className="fingerprint" title={secret.fingerprint}>
              {secretFieldLabel(credential.type, name)}: <code>{shortFingerprint(secret.fingerprint)}</code>
            </div>
          ))}
        </th>
        <td>{credentialTypeTitle(credential.type)}</td>
        <td>
          {credential.allowedWebsites.map((website) => (
            <code key={website} className="website">
              {website}
            </code>
          ))}
        </td>
        <td>{credential.access === 'read' ? 'Read only' : 'Read and write'}</td>
        <td>{formatDateTime(credential.lastUsedAt)}</td>
        <td className={credential.lastMint && credential.lastMint.decision !== 'allowed' ? 'status-bad' : undefined} title={credential.lastMint?.error ?? undefined}>
          <MintStatus credential={credential} />
        </td>
        <td className="actions">
          <button type="button" onClick={testConnection} disabled={panel.kind === 'testing'} aria-label={`Test connection of ${credential.name}`}>
            {panel.kind === 'testing' ? 'Testing…' : 'Test connection'}
          </button>
          <button type="button" onClick={() => navigate(`${path}/edit`)} aria-label={`Edit ${credential.name}`}>
            Edit
          </button>
          <button type="button" onClick={() => setPanel({ kind: 'move' })} disabled={otherBundles.length === 0} title={otherBundles.length === 0 ? 'Create another bundle to move credentials to.' : undefined} aria-label={`Move ${credential.name}`}>
            Move
          </button>
          <button type="button" className="danger" onClick={() => setPanel({ kind: 'delete' })} aria-label={`Delete ${credential.name}`}>
            Delete
          </button>
        </td>
      </tr>
      {panel.kind !== 'none' && panel.kind !== 'testing' && (
        <tr className="row-panel">
          <td colSpan={7}>
            {panel.kind === 'tested' && <TestConnectionResultView result={panel.result} />}
            {panel.kind === 'error' && (
              <div className="notice notice-error" role="alert">
                {panel.message}
              </div>
            )}
            {panel.kind === 'move' && (
              <div className="inline-form">
                <label htmlFor={`move-${credential.id}`}>Move {credential.name} to bundle</label>
                <select id={`move-${credential.id}`} value={targetBundle} onChange={(event) => setTargetBundle(event.target.value)}>
                  {otherBundles.map((candidate) => (
                    <option key={candidate.id} value={candidate.id}>
                      {candidate.name}
                    </option>
                  ))}
                </select>
                <button type="button" className="primary" onClick={move} disabled={!targetBundle}>
                  Move
                </button>
                <button type="button" onClick={() => setPanel({ kind: 'none' })}>
                  Cancel
                </button>
              </div>
            )}
            {panel.kind === 'delete' && (
              <div className="inline-form">
                <span>Delete {credential.name}? Sandboxes lose it at once and its secrets are erased.</span>
                <button type="button" className="danger" onClick={remove}>
                  Delete {credential.name}
                </button>
                <button type="button" onClick={() => setPanel({ kind: 'none' })}>
                  Cancel
                </button>
              </div>
            )}
          </td>
        </tr>
      )}
    </tbody>
  );
}
