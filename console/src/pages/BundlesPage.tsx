// Access bundles: the list, and the form that creates one.

import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, issuesByField, type BundleSummary } from '../api.ts';
import { ErrorNotice, Field, FormErrors } from '../components/Field.tsx';
import { Link } from '../components/Link.tsx';
import { parseList } from '../credentialBody.ts';
import { navigate } from '../router.ts';
import { ChannelScopeInput } from './ChannelScopeInput.tsx';

function channelsText(channels: string[]): string {
  return channels.includes('*') ? 'All channels' : channels.join(', ');
}

function CreateBundleForm({ onCancel }: { onCancel: () => void }) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [scope, setScope] = useState<'all' | 'list'>('list');
  const [channels, setChannels] = useState('');
  const [errors, setErrors] = useState<Record<string, string[]>>({});

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    try {
      const created = await api<BundleSummary>('POST', '/bundles', { name: name.trim(), description: description.trim(), channels: scope === 'all' ? ['*'] : parseList(channels) });
      navigate(`/bundles/${encodeURIComponent(created.id)}/credentials`);
    } catch (error) {
      setErrors(error instanceof ApiError ? issuesByField(error, ['name', 'description', 'channels']) : { '': [String(error)] });
    }
  };

  return (
    <form className="card form" onSubmit={onSubmit} noValidate aria-label="Create bundle">
      <h2>Create a bundle</h2>
      <FormErrors messages={errors['']} />
      <Field id="bundle-name" label="Name" help="Lower-case letters, digits, - and _, such as sales." errors={errors.name}>
        {(describedBy, invalid) => <input id="bundle-name" type="text" required spellCheck={false} aria-describedby={describedBy} aria-invalid={invalid || undefined} value={name} onChange={(event) => setName(event.target.value)} />}
      </Field>
      <Field id="bundle-description" label="Description (optional)" help="What the bundle is for, such as “Sales agents”." errors={errors.description}>
        {(describedBy) => <input id="bundle-description" type="text" aria-describedby={describedBy} value={description} onChange={(event) => setDescription(event.target.value)} />}
      </Field>
      <ChannelScopeInput idPrefix="bundle" scope={scope} channels={channels} errors={errors.channels} onScopeChange={setScope} onChannelsChange={setChannels} />
      <div className="form-actions">
        <button type="submit" className="primary">
          Create bundle
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function BundlesPage() {
  const [bundles, setBundles] = useState<BundleSummary[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);

  useEffect(() => {
    api<{ bundles: BundleSummary[] }>('GET', '/bundles').then((body) => setBundles(body.bundles), setError);
  }, []);

  return (
    <section>
      <h1>Access bundles</h1>
      <p className="lead">A bundle groups the credentials that sandboxes of some channels may use. A sandbox never sees them: the proxy adds them to requests for the allowed websites.</p>
      <ErrorNotice error={error} />
      {creating ? (
        <CreateBundleForm onCancel={() => setCreating(false)} />
      ) : (
        <div className="toolbar">
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New bundle
          </button>
        </div>
      )}
      {bundles !== null && bundles.length === 0 && <p className="empty">No bundles yet. Create one, then add its credentials.</p>}
      {bundles !== null && bundles.length > 0 && (
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Description</th>
                <th scope="col">Channels</th>
                <th scope="col">Credentials</th>
              </tr>
            </thead>
            <tbody>
              {bundles.map((bundle) => (
                <tr key={bundle.id}>
                  <th scope="row">
                    <Link to={`/bundles/${encodeURIComponent(bundle.id)}/credentials`}>{bundle.name}</Link>
                  </th>
                  <td>{bundle.description}</td>
                  <td>{channelsText(bundle.channels)}</td>
                  <td>{bundle.credentialCount}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
