// The scope of a bundle: every channel, or a list of channel ids.

import { Field } from '../components/Field.tsx';

interface Props {
  idPrefix: string;
  scope: 'all' | 'list';
  channels: string;
  errors?: string[];
  onScopeChange: (scope: 'all' | 'list') => void;
  onChannelsChange: (channels: string) => void;
}

export function ChannelScopeInput({ idPrefix, scope, channels, errors, onScopeChange, onChannelsChange }: Props) {
  return (
    <fieldset className="scope">
      <legend>Channels</legend>
      <div className="radio">
        <input id={`${idPrefix}-scope-list`} type="radio" name={`${idPrefix}-scope`} checked={scope === 'list'} onChange={() => onScopeChange('list')} />
        <label htmlFor={`${idPrefix}-scope-list`}>Only these channels</label>
      </div>
      <div className="radio">
        <input id={`${idPrefix}-scope-all`} type="radio" name={`${idPrefix}-scope`} checked={scope === 'all'} onChange={() => onScopeChange('all')} />
        <label htmlFor={`${idPrefix}-scope-all`}>All channels</label>
      </div>
      {scope === 'list' && (
        <Field id={`${idPrefix}-channels`} label="Channel ids" help="The chat channel ids whose sandboxes get this bundle, such as C0SALES, separated by spaces, commas or lines." errors={errors}>
          {(describedBy, invalid) => (
            <textarea id={`${idPrefix}-channels`} rows={2} className="mono" spellCheck={false} aria-describedby={describedBy} aria-invalid={invalid || undefined} value={channels} onChange={(event) => onChannelsChange(event.target.value)} />
          )}
        </Field>
      )}
      {scope === 'all' && errors && errors.length > 0 && (
        <div className="field-error" role="alert">
          {errors.map((message) => (
            <p key={message}>{message}</p>
          ))}
        </div>
      )}
    </fieldset>
  );
}
