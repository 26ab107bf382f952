// "Connect another app": pick a credential type, then fill that type's form. Also the
// edit page of an existing credential, whose type is fixed.

import { useEffect, useState } from 'react';
import { api, type BundleDetail, type CredentialView } from '../api.ts';
import { ErrorNotice } from '../components/Field.tsx';
import { Link } from '../components/Link.tsx';
import { CREDENTIAL_TYPES, credentialTypeDefinition, secretFieldLabel, type CredentialTypeDefinition } from '../credentialTypes.ts';
import { shortFingerprint } from '../credentialBody.ts';
import { setFlash } from '../flash.ts';
import { navigate } from '../router.ts';
import { CredentialForm } from './CredentialForm.tsx';

/** Describes a saved credential's secrets by fingerprint, the only form in which the console shows them. */
export function savedMessage(credential: CredentialView): string {
  const secrets = Object.entries(credential.secrets)
    .filter(([, secret]) => secret.set)
    .map(([name, secret]) => `${secretFieldLabel(credential.type, name)} with fingerprint ${secret.fingerprint}${secret.publicKeyFingerprint ? ` (public key ${shortFingerprint(secret.publicKeyFingerprint)})` : ''}`);
  return `Saved ${credential.name}.${secrets.length > 0 ? ` Stored the ${secrets.join('; the ')}.` : ''}`;
}

function useBundle(bundleId: string) {
  const [bundle, setBundle] = useState<BundleDetail | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<BundleDetail>('GET', `/bundles/${encodeURIComponent(bundleId)}`).then(setBundle, setError);
  }, [bundleId]);
  return { bundle, error };
}

function TypePicker({ onPick }: { onPick: (definition: CredentialTypeDefinition) => void }) {
  return (
    <fieldset className="type-picker">
      <legend>Credential type</legend>
      <div className="cards">
        {CREDENTIAL_TYPES.map((definition) => (
          <button key={definition.type} type="button" className="card card-choice" onClick={() => onPick(definition)}>
            <strong>{definition.title}</strong>
            <span>{definition.summary}</span>
            <code>{definition.type}</code>
          </button>
        ))}
      </div>
    </fieldset>
  );
}

function Breadcrumb({ bundle, current }: { bundle: BundleDetail | null; current: string }) {
  return (
    <nav className="breadcrumb" aria-label="Breadcrumb">
      <Link to="/bundles">Access bundles</Link> ›{' '}
      {bundle ? <Link to={`/bundles/${encodeURIComponent(bundle.id)}/credentials`}>{bundle.name}</Link> : '…'} › {current}
    </nav>
  );
}

export function ConnectAppPage({ bundleId }: { bundleId: string }) {
  const { bundle, error } = useBundle(bundleId);
  const [definition, setDefinition] = useState<CredentialTypeDefinition | null>(null);
  const credentialsPath = `/bundles/${encodeURIComponent(bundleId)}/credentials`;

  return (
    <section>
      <Breadcrumb bundle={bundle} current="Connect another app" />
      <h1>Connect another app</h1>
      <ErrorNotice error={error} />
      {definition ? (
        <>
          <p className="lead">
            {definition.title}: {definition.summary}{' '}
            <button type="button" className="link-button" onClick={() => setDefinition(null)}>
              Choose another type
            </button>
          </p>
          <CredentialForm
            bundleId={bundleId}
            definition={definition}
            onSaved={(credential) => {
              setFlash(savedMessage(credential));
              navigate(credentialsPath);
            }}
            onCancel={() => navigate(credentialsPath)}
          />
        </>
      ) : (
        <>
          <p className="lead">Choose how the app authenticates. For a well-known app, a preset fills most of this in for you.</p>
          <TypePicker onPick={setDefinition} />
        </>
      )}
    </section>
  );
}

export function EditCredentialPage({ bundleId, credentialId }: { bundleId: string; credentialId: string }) {
  const { bundle, error } = useBundle(bundleId);
  const credential = bundle?.credentials.find((candidate) => candidate.id === credentialId);
  const definition = credential ? credentialTypeDefinition(credential.type) : undefined;
  const credentialsPath = `/bundles/${encodeURIComponent(bundleId)}/credentials`;

  return (
    <section>
      <Breadcrumb bundle={bundle} current={credential ? `Edit ${credential.name}` : 'Edit credential'} />
      <h1>{credential ? `Edit ${credential.name}` : 'Edit credential'}</h1>
      <ErrorNotice error={error} />
      {bundle && !credential && <ErrorNotice error={`No credential with id ${credentialId} is in bundle ${bundle.name}.`} />}
      {credential && !definition && <ErrorNotice error={`The console cannot edit credentials of type ${credential.type}; use agent-proxy apply.`} />}
      {credential && definition && (
        <CredentialForm
          bundleId={bundleId}
          definition={definition}
          existing={credential}
          onSaved={(saved) => {
            setFlash(savedMessage(saved));
            navigate(credentialsPath);
          }}
          onCancel={() => navigate(credentialsPath)}
        />
      )}
    </section>
  );
}
