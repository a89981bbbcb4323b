// Reading untyped objects (parsed YAML/JSON from the API or files) without casts at every step: is it a
// plain object, the object or an empty one, the list or nothing. Pure; never validates meaning.

export type Obj = Record<string, unknown>;

export const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
export const asObj = (v: unknown): Obj => (isObj(v) ? v : {});
export const asList = (v: unknown): unknown[] | undefined => (Array.isArray(v) ? v : undefined);
