// "Add from preset": the catalogue of well-known apps as cards, then a form built from
// the chosen preset's fields. The server fills in the type, headers and websites.

import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, issuesByField, type CredentialView, type Preset, type PresetField } from '../api.ts';
import { ErrorNotice, Field, FormErrors } from '../components/Field.tsx';
import { Link } from '../components/Link.tsx';
import { credentialTypeTitle } from '../credentialTypes.ts';
import { setFlash } from '../flash.ts';
import { navigate } from '../router.ts';
import { savedMessage } from './ConnectAppPage.tsx';

function PresetForm({ bundleId, preset, onCancel }: { bundleId: string; preset: Preset; onCancel: () => void }) {
  const [name, setName] = useState(preset.id);
  const [access, setAccess] = useState<'read' | 'read_write'>('read');
  const [values, setValues] = useState<Record<string, string>>(() => Object.fromEntries(preset.fields.map((field) => [field.name, field.options?.[0]?.value ?? ''])));
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [saving, setSaving] = useState(false);

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setErrors({});
    try {
      const filled = Object.fromEntries(Object.entries(values).filter(([, value]) => value.trim() !== ''));
      const saved = await api<CredentialView>('POST', `/presets/${encodeURIComponent(preset.id)}/credential`, { bundleId, name: name.trim(), values: filled, access });
      setFlash(savedMessage(saved));
      navigate(`/bundles/${encodeURIComponent(bundleId)}/credentials`);
    } catch (error) {
      setErrors(error instanceof ApiError ? issuesByField(error, ['name', ...preset.fields.map((field) => field.name)]) : { '': [String(error)] });
      setValues((current) => {
        const next = { ...current };
        for (const field of preset.fields) if (field.secret) next[field.name] = '';
        return next;
      });
    } finally {
      setSaving(false);
    }
  };

  const renderField = (field: PresetField) => {
    const id = `preset-${field.name}`;
    const help = field.example ? `${field.help} Example: ${field.example}` : field.help;
    const label = field.required ? field.label : `${field.label} (optional)`;
    const value = values[field.name] ?? '';
    const onChange = (next: string) => setValues((current) => ({ ...current, [field.name]: next }));
    return (
      <Field key={field.name} id={id} label={label} help={help} errors={errors[field.name]}>
        {(describedBy, invalid) => {
          const common = { id, name: field.name, 'aria-describedby': describedBy, 'aria-invalid': invalid || undefined, required: field.required };
          if (field.kind === 'select') {
            return (
              <select {...common} value={value} onChange={(event) => onChange(event.target.value)}>
                {(field.options ?? []).map((option) => (
                  <option key={option.value} value={option.value}>
                    {option.label}
                  </option>
                ))}
              </select>
            );
          }
          if (field.kind === 'pem' || field.kind === 'textarea') {
            return <textarea {...common} className="mono" rows={field.kind === 'pem' ? 6 : 4} spellCheck={false} autoComplete="off" placeholder={field.example} value={value} onChange={(event) => onChange(event.target.value)} />;
          }
          return (
            <input
              {...common}
              type={field.secret || field.kind === 'secret' ? 'password' : 'text'}
              autoComplete={field.secret ? 'new-password' : 'off'}
              spellCheck={false}
              placeholder={field.example}
              value={value}
              onChange={(event) => onChange(event.target.value)}
            />
          );
        }}
      </Field>
    );
  };

  return (
    <form className="card form" onSubmit={onSubmit} noValidate>
      <FormErrors messages={errors['']} />
      <Field id="preset-credential-name" label="Name" help="A unique name for this credential: lower-case letters, digits, - and _." errors={errors.name}>
        {(describedBy, invalid) => (
          <input id="preset-credential-name" name="name" type="text" required spellCheck={false} aria-describedby={describedBy} aria-invalid={invalid || undefined} value={name} onChange={(event) => setName(event.target.value)} />
        )}
      </Field>
      {preset.fields.map(renderField)}
      <Field id="preset-access" label="Access" help="Read only allows GET, HEAD and OPTIONS. Choose read and write only if agents must change data in this app." errors={errors.access}>
        {(describedBy) => (
          <select id="preset-access" name="access" aria-describedby={describedBy} value={access} onChange={(event) => setAccess(event.target.value as 'read' | 'read_write')}>
            <option value="read">Read only</option>
            <option value="read_write">Read and write</option>
          </select>
        )}
      </Field>
      <div className="form-actions">
        <button type="submit" className="primary" disabled={saving}>
          {saving ? 'Saving…' : `Add ${preset.name}`}
        </button>
        <button type="button" onClick={onCancel}>
          Back to presets
        </button>
      </div>
    </form>
  );
}

export function PresetPage({ bundleId }: { bundleId: string }) {
  const [presets, setPresets] = useState<Preset[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [chosen, setChosen] = useState<Preset | null>(null);
  const [filter, setFilter] = useState('');

  useEffect(() => {
    api<{ presets: Preset[] }>('GET', '/presets').then((body) => setPresets(body.presets), setError);
  }, []);

  const shown = (presets ?? []).filter((preset) => `${preset.name} ${preset.description}`.toLowerCase().includes(filter.trim().toLowerCase()));

  return (
    <section>
      <nav className="breadcrumb" aria-label="Breadcrumb">
        <Link to="/bundles">Access bundles</Link> › <Link to={`/bundles/${encodeURIComponent(bundleId)}/credentials`}>Credentials</Link> › Add from preset
      </nav>
      <h1>{chosen ? `Add ${chosen.name}` : 'Add from preset'}</h1>
      <ErrorNotice error={error} />
      {chosen ? (
        <>
          <p className="lead">
            {chosen.description} {credentialTypeTitle(chosen.type)}.{' '}
            {chosen.setupGuideUrl && (
              <a href={chosen.setupGuideUrl} target="_blank" rel="noreferrer noopener">
                Provider setup guide
              </a>
            )}
          </p>
          <PresetForm bundleId={bundleId} preset={chosen} onCancel={() => setChosen(null)} />
        </>
      ) : (
        <>
          <div className="field inline-field">
            <label htmlFor="preset-filter">Find an app</label>
            <input id="preset-filter" type="search" value={filter} onChange={(event) => setFilter(event.target.value)} />
          </div>
          {presets === null && !error && <p>Loading presets…</p>}
          {presets !== null && shown.length === 0 && <p>No preset matches. Use “Connect another app” for any other API.</p>}
          <div className="cards">
            {shown.map((preset) => (
              <button key={preset.id} type="button" className="card card-choice" onClick={() => setChosen(preset)}>
                <strong>{preset.name}</strong>
                <span>{preset.description}</span>
                <code>{preset.type}</code>
              </button>
            ))}
          </div>
        </>
      )}
    </section>
  );
}
