// The lab's address ranges against the routes of the machine's own namespace: a lab whose ranges overlap a
// route there (the machine sits on a documentation range, a VPN routes 10.244/16) refuses to start, so that
// no lab address could ever shadow or reach a real network. Reads routes with `ip -j`; changes nothing.
import { cidrRange, parseCidr } from '../policy/address.ts';
import { LabError } from './errors.ts';
import { check } from './exec.ts';

/** Every range a lab may use (pods, nodes, outside hosts; README of the scenarios: "Addresses"). */
export const LAB_RANGES = [
  '10.244.0.0/16',
  'fd00:10:244::/48',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '2001:db8::/32',
] as const;

export interface RouteEntry {
  dst: string;
  dev?: string;
  table?: string;
}

/** The routes (as `ip -j route` lists them) that overlap one of `ranges`; default routes never count. */
export function overlappingRoutes(
  routes: readonly RouteEntry[],
  ranges: readonly string[] = LAB_RANGES,
): { route: RouteEntry; range: string }[] {
  const labs = ranges.map((text) => {
    const c = parseCidr(text);
    if (typeof c === 'string') throw new LabError('E_LAB_SPEC', `lab range ${c}`);
    return { text, range: cidrRange(c) };
  });
  const out: { route: RouteEntry; range: string }[] = [];
  for (const route of routes) {
    if (route.dst === 'default') continue;
    const c = parseCidr(
      route.dst.includes('/') ? route.dst : `${route.dst}/${route.dst.includes(':') ? 128 : 32}`,
    );
    if (typeof c === 'string' || c.prefix === 0) continue;
    const r = cidrRange(c);
    for (const lab of labs) {
      if (lab.range.family === r.family && r.first <= lab.range.last && lab.range.first <= r.last)
        out.push({ route, range: lab.text });
    }
  }
  return out;
}

/** Throws E_LAB_SPEC naming the route and the range when the machine's own namespace routes a lab range. */
export async function assertLabRangesFree(): Promise<void> {
  const routes: RouteEntry[] = [];
  for (const family of ['-4', '-6']) {
    const r = await check(['ip', '-j', family, 'route', 'show', 'table', 'all']);
    routes.push(...(JSON.parse(r.stdout || '[]') as RouteEntry[]));
  }
  const hits = overlappingRoutes(routes);
  if (hits.length > 0) {
    const list = hits.map((h) => `${h.route.dst} (dev ${h.route.dev ?? '?'}) overlaps ${h.range}`).join('; ');
    throw new LabError(
      'E_LAB_SPEC',
      `refusing to start a lab: the machine's own namespace routes a lab range: ${list}. Lab addresses must never meet a real network.`,
    );
  }
}
