// Label selectors (matchLabels + matchExpressions): validation, matching and a canonical key; pure.
import type { LabelSelector, Labels, SelectorRequirement } from './types.ts';

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/** The selector that matches everything (`{}`). */
export const everything: LabelSelector = { matchLabels: {}, matchExpressions: [] };

/**
 * Normalizes a selector from an API object or YAML. Returns problems as [fieldSuffix, message] pairs;
 * an invalid selector must not be used to select (callers fail closed).
 */
export function normalizeSelector(raw: unknown): { selector: LabelSelector; problems: [string, string][] } {
  const problems: [string, string][] = [];
  if (raw === null || raw === undefined) return { selector: everything, problems };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return { selector: everything, problems: [['', 'must be a label selector object']] };
  }
  const r = raw as { matchLabels?: unknown; matchExpressions?: unknown };
  const matchLabels: Record<string, string> = {};
  if (r.matchLabels !== undefined && r.matchLabels !== null) {
    if (typeof r.matchLabels !== 'object' || Array.isArray(r.matchLabels)) {
      problems.push(['.matchLabels', 'must be a map of label keys to values']);
    } else {
      for (const [k, v] of Object.entries(r.matchLabels)) {
        if (typeof v !== 'string') problems.push([`.matchLabels.${k}`, 'label values must be strings']);
        else matchLabels[k] = v;
      }
    }
  }
  const matchExpressions: SelectorRequirement[] = [];
  if (r.matchExpressions !== undefined && r.matchExpressions !== null) {
    if (!Array.isArray(r.matchExpressions)) {
      problems.push(['.matchExpressions', 'must be a list']);
    } else {
      r.matchExpressions.forEach((e: unknown, i: number) => {
        const field = `.matchExpressions[${i}]`;
        const req = (e ?? {}) as { key?: unknown; operator?: unknown; values?: unknown };
        if (typeof req.key !== 'string' || req.key === '') {
          problems.push([`${field}.key`, 'is required']);
          return;
        }
        const operator = req.operator as SelectorRequirement['operator'];
        if (!OPERATORS.includes(operator)) {
          problems.push([
            `${field}.operator`,
            `'${String(req.operator)}' is not one of ${OPERATORS.join(', ')}`,
          ]);
          return;
        }
        const values = req.values ?? [];
        if (!Array.isArray(values) || values.some((v) => typeof v !== 'string')) {
          problems.push([`${field}.values`, 'must be a list of strings']);
          return;
        }
        const needsValues = operator === 'In' || operator === 'NotIn';
        if (needsValues && values.length === 0) {
          problems.push([`${field}.values`, `must be non-empty for operator ${operator}`]);
          return;
        }
        if (!needsValues && values.length > 0) {
          problems.push([`${field}.values`, `must be empty for operator ${operator}`]);
          return;
        }
        matchExpressions.push({ key: req.key, operator, values: [...(values as string[])].sort() });
      });
    }
  }
  return { selector: { matchLabels, matchExpressions }, problems };
}

export function matchesSelector(selector: LabelSelector, labels: Labels): boolean {
  // for...in, not Object.entries: this runs for every pod against every selector, and entries allocates.
  const want = selector.matchLabels;
  for (const k in want) if (labels[k] !== want[k]) return false;
  for (const req of selector.matchExpressions) {
    const has = Object.hasOwn(labels, req.key);
    switch (req.operator) {
      case 'In':
        if (!has || !req.values.includes(labels[req.key]!)) return false;
        break;
      case 'NotIn':
        // Kubernetes: NotIn also matches objects that do not have the key at all.
        if (has && req.values.includes(labels[req.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

export function isEverything(selector: LabelSelector): boolean {
  return Object.keys(selector.matchLabels).length === 0 && selector.matchExpressions.length === 0;
}

/** A canonical text form: equal selectors give equal keys (used to share address sets). */
export function selectorKey(selector: LabelSelector): string {
  const labels = Object.keys(selector.matchLabels)
    .sort()
    .map((k) => `${k}=${selector.matchLabels[k]}`);
  const exprs = selector.matchExpressions
    .map((e) => `${e.key} ${e.operator}${e.values.length ? ` (${e.values.join(',')})` : ''}`)
    .sort();
  const all = [...labels, ...exprs];
  return all.length === 0 ? '{}' : all.join(', ');
}
