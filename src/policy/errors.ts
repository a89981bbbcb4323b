// Validation errors of Kubernetes objects: they name the object and the field. Pure data, no I/O.
import { TollgateError } from '../util/errors.ts';
import type { ValidationIssue } from './types.ts';

export function formatIssue(issue: ValidationIssue): string {
  return `${issue.object}: ${issue.field}: ${issue.message}`;
}

/** Thrown only where an object cannot be used at all (e.g. a Pod without a name). */
export class ValidationError extends TollgateError<'E_VALIDATION'> {
  readonly issues: ValidationIssue[];
  constructor(issues: ValidationIssue[]) {
    super('E_VALIDATION', issues.map(formatIssue).join('; '));
    this.issues = issues;
  }
}
