// The Scope tab: which channels the bundle's credentials serve, its description, and
// deleting the bundle.

import { useState, type FormEvent } from 'react';
import { api, ApiError, issuesByField, type BundleDetail } from '../api.ts';
import { Field, FormErrors } from '../components/Field.tsx';
import { parseList } from '../credentialBody.ts';
import { navigate } from '../router.ts';
import { ChannelScopeInput } from './ChannelScopeInput.tsx';

export function ScopeTab({ bundle, onSaved }: { bundle: BundleDetail; onSaved: () => Promise<void> }) {
  const allChannels = bundle.channels.includes('*');
  const [scope, setScope] = useState<'all' | 'list'>(allChannels ? 'all' : 'list');
  const [channels, setChannels] = useState(allChannels ? '' : bundle.channels.join('\n'));
  const [description, setDescription] = useState(bundle.description);
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [confirmDelete, setConfirmDelete] = useState(false);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setErrors({});
    setMessage(null);
    try {
      await api('PATCH', `/bundles/${encodeURIComponent(bundle.id)}`, { description, channels: scope === 'all' ? ['*'] : parseList(channels) });
      setMessage('Scope saved. Sessions of these channels get the bundle\'s credentials within a second.');
      await onSaved();
    } catch (error) {
      setErrors(error instanceof ApiError ? issuesByField(error, ['channels', 'description']) : { '': [String(error)] });
    }
  };

  const onDelete = async () => {
    try {
      await api('DELETE', `/bundles/${encodeURIComponent(bundle.id)}`);
      navigate('/bundles');
    } catch (error) {
      setErrors({ '': [error instanceof Error ? error.message : String(error)] });
      setConfirmDelete(false);
    }
  };

  return (
    <>
      <form className="card form" onSubmit={onSubmit} noValidate>
        <FormErrors messages={errors['']} />
        {message && (
          <div className="notice notice-ok" role="status">
            {message}
          </div>
        )}
        <ChannelScopeInput idPrefix="scope" scope={scope} channels={channels} errors={errors.channels} onScopeChange={setScope} onChannelsChange={setChannels} />
        <Field id="scope-description" label="Description" help="What the bundle is for, shown in the bundle list." errors={errors.description}>
          {(describedBy) => <input id="scope-description" type="text" aria-describedby={describedBy} value={description} onChange={(event) => setDescription(event.target.value)} />}
        </Field>
        <div className="form-actions">
          <button type="submit" className="primary">
            Save scope
          </button>
        </div>
      </form>
      <div className="card danger-zone">
        <h2>Delete this bundle</h2>
        <p>Its {bundle.credentials.length} credential(s) are deleted with it, and sessions stop getting them at once.</p>
        {confirmDelete ? (
          <div className="form-actions">
            <button type="button" className="danger" onClick={onDelete}>
              Delete {bundle.name} and its credentials
            </button>
            <button type="button" onClick={() => setConfirmDelete(false)}>
              Cancel
            </button>
          </div>
        ) : (
          <button type="button" className="danger" onClick={() => setConfirmDelete(true)}>
            Delete bundle…
          </button>
        )}
      </div>
    </>
  );
}
