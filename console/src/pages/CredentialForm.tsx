// The form for one credential of a given type: new ("Connect another app") or an edit.
// On a rejected save it shows each API issue beside its field, keeps what the admin
// typed, and clears the secret fields so a secret never lingers in the page.

import { useState, type FormEvent } from 'react';
import { api, ApiError, issuesByField, type CredentialView } from '../api.ts';
import { Field, FormErrors } from '../components/Field.tsx';
import { defaultJwtAudience, isSecretField, type CredentialTypeDefinition, type TypeField } from '../credentialTypes.ts';
import { formatHeaders, formatRules, parseHeaders, parseList, parseRules, shortFingerprint } from '../credentialBody.ts';

const COMMON_FIELDS = ['name', 'allowedWebsites', 'access', 'probeUrl', 'extraHeaders', 'rules'];

interface Props {
  bundleId: string;
  definition: CredentialTypeDefinition;
  existing?: CredentialView;
  onSaved: (credential: CredentialView) => void;
  onCancel: () => void;
}

function initialValues(definition: CredentialTypeDefinition, existing: CredentialView | undefined): Record<string, string> {
  const values: Record<string, string> = {
    name: existing?.name ?? '',
    allowedWebsites: existing?.allowedWebsites.join('\n') ?? '',
    access: existing?.access ?? 'read_write',
    probeUrl: String(existing?.settings.probeUrl ?? ''),
    extraHeaders: existing ? formatHeaders(existing.extraHeaders) : '',
    rules: existing ? formatRules(existing.rules) : '',
  };
  for (const field of definition.fields) {
    values[field.name] = isSecretField(field) ? '' : String(existing?.settings[field.name] ?? '');
  }
  return values;
}

export function CredentialForm({ bundleId, definition, existing, onSaved, onCancel }: Props) {
  const [values, setValues] = useState(() => initialValues(definition, existing));
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [saving, setSaving] = useState(false);
  const set = (name: string, value: string) => setValues((current) => ({ ...current, [name]: value }));
  const fieldId = (name: string) => `credential-${name}`;

  const buildBody = (): Record<string, unknown> => {
    const body: Record<string, unknown> = {
      name: values.name!.trim(),
      allowedWebsites: parseList(values.allowedWebsites!),
      access: values.access,
      extraHeaders: parseHeaders(values.extraHeaders!),
      rules: parseRules(values.rules!),
    };
    if (!existing) body.type = definition.type;
    // An empty optional field is left out, so the server applies its default. On an
    // edit, an empty secret is left out too, which keeps the stored one.
    const probeUrl = values.probeUrl!.trim();
    if (probeUrl) body.probeUrl = probeUrl;
    for (const field of definition.fields) {
      const raw = values[field.name] ?? '';
      const value = field.kind === 'pem' ? raw : raw.trim();
      if (value) body[field.name] = value;
    }
    return body;
  };

  const onSubmit = async (event: FormEvent) => {
    event.preventDefault();
    setSaving(true);
    setErrors({});
    try {
      const path = existing ? `/bundles/${encodeURIComponent(bundleId)}/credentials/${encodeURIComponent(existing.id)}` : `/bundles/${encodeURIComponent(bundleId)}/credentials`;
      const saved = await api<CredentialView>(existing ? 'PATCH' : 'POST', path, buildBody());
      onSaved(saved);
    } catch (error) {
      const fieldNames = [...COMMON_FIELDS, ...definition.fields.map((field) => field.name)];
      setErrors(error instanceof ApiError ? issuesByField(error, fieldNames) : { '': [String(error)] });
      setValues((current) => {
        const next = { ...current };
        for (const field of definition.fields) if (isSecretField(field)) next[field.name] = '';
        return next;
      });
    } finally {
      setSaving(false);
    }
  };

  const renderTypeField = (field: TypeField) => {
    const id = fieldId(field.name);
    const stored = existing?.secrets[field.name];
    let help: string = field.help;
    if (field.name === 'audience' && definition.type === 'oauth2_jwt_bearer') {
      const fallback = defaultJwtAudience(values.tokenUrl ?? '', values.provider ?? '');
      help = `${field.help} Default: ${fallback ?? 'the audience follows the token URL and provider, once the token URL is filled in'}.`;
    }
    if (stored?.set) help = `${help} Stored value: ${shortFingerprint(stored.fingerprint)}; leave empty to keep it.`;
    return (
      <Field key={field.name} id={id} label={field.label} help={help} errors={errors[field.name]}>
        {(describedBy, invalid) => {
          const common = { id, name: field.name, 'aria-describedby': describedBy, 'aria-invalid': invalid || undefined };
          if (field.kind === 'select') {
            return (
              <select {...common} value={values[field.name]} onChange={(event) => set(field.name, event.target.value)}>
                {field.options!.map((option) => (
                  <option key={option.value} value={option.value}>
                    {option.label}
                  </option>
                ))}
              </select>
            );
          }
          if (field.kind === 'pem') {
            return (
              <textarea
                {...common}
                className="mono"
                rows={6}
                spellCheck={false}
                autoComplete="off"
                placeholder={stored?.set ? 'Leave empty to keep the stored key' : '-----BEGIN PRIVATE KEY-----'}
                required={field.required && !stored?.set}
                value={values[field.name]}
                onChange={(event) => set(field.name, event.target.value)}
              />
            );
          }
          return (
            <input
              {...common}
              type={field.kind === 'secret' ? 'password' : 'text'}
              autoComplete={field.kind === 'secret' ? 'new-password' : 'off'}
              spellCheck={false}
              placeholder={field.placeholder}
              required={field.required && !stored?.set}
              value={values[field.name]}
              onChange={(event) => set(field.name, event.target.value)}
            />
          );
        }}
      </Field>
    );
  };

  const textInput = (name: string, label: string, help: string, options: { required?: boolean; placeholder?: string } = {}) => (
    <Field id={fieldId(name)} label={label} help={help} errors={errors[name]}>
      {(describedBy, invalid) => (
        <input id={fieldId(name)} name={name} type="text" spellCheck={false} required={options.required} placeholder={options.placeholder} aria-describedby={describedBy} aria-invalid={invalid || undefined} value={values[name]} onChange={(event) => set(name, event.target.value)} />
      )}
    </Field>
  );

  const textArea = (name: string, label: string, help: string, placeholder: string) => (
    <Field id={fieldId(name)} label={label} help={help} errors={errors[name]}>
      {(describedBy, invalid) => (
        <textarea id={fieldId(name)} name={name} rows={3} className="mono" spellCheck={false} placeholder={placeholder} aria-describedby={describedBy} aria-invalid={invalid || undefined} value={values[name]} onChange={(event) => set(name, event.target.value)} />
      )}
    </Field>
  );

  let submitLabel = existing ? 'Save changes' : 'Save credential';
  if (saving) submitLabel = 'Saving…';

  return (
    <form className="card form" onSubmit={onSubmit} noValidate>
      <FormErrors messages={errors['']} />
      {textInput('name', 'Name', 'A unique name for this credential, used in the audit log and by agent-proxy test-connection: lower-case letters, digits, - and _.', { required: true, placeholder: 'crm-readonly' })}
      {definition.fields.filter((field) => !field.advanced).map(renderTypeField)}
      {textArea('allowedWebsites', 'Allowed websites', 'The API hosts this credential may be sent to, one per line: a host such as api.example.com, *.example.com, or host:port (for Salesforce, the instance yourorg.my.salesforce.com, not login.salesforce.com). No https:// and no path.', 'api.example.com')}
      <Field id={fieldId('access')} label="Access" help="Read only allows GET, HEAD and OPTIONS requests; read and write allows every method." errors={errors.access}>
        {(describedBy) => (
          <select id={fieldId('access')} name="access" aria-describedby={describedBy} value={values.access} onChange={(event) => set('access', event.target.value)}>
            <option value="read">Read only</option>
            <option value="read_write">Read and write</option>
          </select>
        )}
      </Field>
      <details className="advanced" open={Object.keys(errors).some((name) => ['probeUrl', 'extraHeaders', 'rules', ...definition.fields.filter((field) => field.advanced).map((field) => field.name)].includes(name))}>
        <summary>Advanced settings</summary>
        {definition.fields.filter((field) => field.advanced).map(renderTypeField)}
        {textInput('probeUrl', 'Test connection URL (optional)', 'An https URL on an allowed website that shows who the credential runs as. Salesforce and Google credentials use their userinfo endpoint when this is empty.')}
        {textArea('extraHeaders', 'Extra headers (optional)', 'Fixed headers the API requires, one "Name: value" per line, such as a version header.', 'X-GitHub-Api-Version: 2022-11-28')}
        {textArea('rules', 'Rules (optional)', 'Narrow the credential to some methods and paths, one rule per line: methods, then path patterns. * matches one path segment and a final ** any rest.', 'GET /services/data/*/query')}
      </details>
      <div className="form-actions">
        <button type="submit" className="primary" disabled={saving}>
          {submitLabel}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
