/** Stable codes of the errors raised by encryption at rest; callers branch on these, never on message text. */
export type SecretsErrorCode =
  /** A master key value is not 32 bytes in base64 or hex. */
  | 'master_key_invalid'
  /** The master key file can be read by users other than its owner. */
  | 'master_key_file_mode'
  /** The data keys are wrapped by another master key than the one given. */
  | 'master_key_mismatch'
  /** A wrapped data key failed to unwrap although its master key id matched. */
  | 'data_key_unwrap_failed'
  /** A ciphertext names a data key that this process has not loaded. */
  | 'data_key_not_loaded'
  /** A ciphertext is malformed, altered, or bound to another record. */
  | 'secret_decrypt_failed';

/** An error of encryption at rest. Messages name keys by fingerprint and records by id, never a key or secret. */
export class SecretsError extends Error {
  readonly code: SecretsErrorCode;

  constructor(code: SecretsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SecretsError';
    this.code = code;
  }
}

/** Returns whether `error` is a SecretsError with `code`. */
export function isSecretsError(error: unknown, code: SecretsErrorCode): error is SecretsError {
  return error instanceof SecretsError && error.code === code;
}
