// Public face of the nftables library: typed objects, expressions, builders, transaction and read-back.
// Re-exports only; nothing is defined here.

export { NetlinkError } from '../netlink/errors.ts';
export { NfnlSocket } from '../netlink/socket.ts';
export { NetlinkConnection, type NftCommitter, type NftConnection } from './conn.ts';
export * from './datatypes.ts';
export { NftValidationError } from './errors.ts';
export * from './expr/index.ts';
export { FakeNft, type FakeNftOptions, type FakeTable, type Refusal } from './fake.ts';
export * from './family.ts';
export * from './list.ts';
export * as m from './match.ts';
export { Chain, Rule, renderExprs, Table } from './objects.ts';
export {
  Element,
  type ElementInput,
  type Elements,
  elementCount,
  type FieldSpan,
  type MapVerdict,
  NamedSet,
  PackedElements,
  type RangeAt,
  type RangeGroup,
  rangeCount,
  rangeIds,
  rangeItems,
  rangeKey,
  regroup,
  type SetFlag,
  type SetOptions,
  sliceElements,
} from './set.ts';
export { LimitObject, type LimitObjectOptions } from './stateful.ts';
export { commitWithRetry, elementsBytesBound, type NftObject, Transaction } from './transaction.ts';
export * from './verdict.ts';
