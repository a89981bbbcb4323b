// Multi-document YAML text as plain data, for manifests and scenario files alike. Parsing only: what the
// documents mean is the caller's business.
import { parseAllDocuments } from 'yaml';
import { UsageError } from './errors.ts';

/**
 * Every document of a multi-document YAML text as plain data; a syntax error or an alias that cannot be
 * resolved (the yaml library throws those only when converting) becomes an error naming `where`, the
 * document and the problem, never a stack trace. `fail` makes that error (default: a UsageError).
 */
export function yamlDocuments(
  text: string,
  where: string,
  fail: (message: string, cause?: unknown) => Error = (message, cause) => new UsageError(message, { cause }),
): unknown[] {
  return parseAllDocuments(text).map((doc, i) => {
    if (doc.errors.length > 0) throw fail(`${where}: document ${i}: ${doc.errors[0]!.message}`);
    try {
      return doc.toJS() as unknown;
    } catch (error) {
      throw fail(`${where}: document ${i}: ${(error as Error).message}`, error);
    }
  });
}
