// One labelled form control with its help text and the API's messages for it. The
// label is tied to the control with `for`, and the messages with aria-describedby.

import type { ReactNode } from 'react';

export interface FieldProps {
  id: string;
  label: string;
  help?: ReactNode;
  errors?: string[];
  children: (describedBy: string | undefined, invalid: boolean) => ReactNode;
}

export function Field({ id, label, help, errors, children }: FieldProps) {
  const helpId = help ? `${id}-help` : undefined;
  const errorId = errors && errors.length > 0 ? `${id}-error` : undefined;
  const describedBy = [errorId, helpId].filter(Boolean).join(' ') || undefined;
  return (
    <div className={errorId ? 'field field-invalid' : 'field'}>
      <label htmlFor={id}>{label}</label>
      {children(describedBy, Boolean(errorId))}
      {errorId && (
        <div className="field-error" id={errorId} role="alert">
          {errors!.map((message) => (
            <p key={message}>{message}</p>
          ))}
        </div>
      )}
      {help && (
        <p className="field-help" id={helpId}>
          {help}
        </p>
      )}
    </div>
  );
}

/** Messages that belong to no field of the form, such as a duplicate name or a server error. */
export function FormErrors({ messages }: { messages?: string[] }) {
  if (!messages || messages.length === 0) return null;
  return (
    <div className="notice notice-error" role="alert">
      {messages.map((message) => (
        <p key={message}>{message}</p>
      ))}
    </div>
  );
}

export function ErrorNotice({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div className="notice notice-error" role="alert">
      <p>{message}</p>
    </div>
  );
}
