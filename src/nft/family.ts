// Table families and base-chain hooks with their kernel numbers. Constants only.

import { NFPROTO } from '../netlink/constants.ts';

export type Family = 'inet' | 'ip' | 'ip6' | 'bridge';
export const FAMILIES: Record<Family, number> = {
  inet: NFPROTO.INET,
  ip: NFPROTO.IPV4,
  ip6: NFPROTO.IPV6,
  bridge: NFPROTO.BRIDGE,
};
export function familyFromNumber(n: number): Family | undefined {
  return (Object.entries(FAMILIES) as Array<[Family, number]>).find(([, v]) => v === n)?.[0];
}

export type Hook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting';
/** NF_INET_* hook numbers (NFTA_HOOK_HOOKNUM, u32 big-endian). */
export const HOOKS: Record<Hook, number> = { prerouting: 0, input: 1, forward: 2, output: 3, postrouting: 4 };
export function hookFromNumber(n: number): Hook | undefined {
  return (Object.entries(HOOKS) as Array<[Hook, number]>).find(([, v]) => v === n)?.[0];
}

export type ChainType = 'filter' | 'nat' | 'route';
export type Policy = 'accept' | 'drop';
