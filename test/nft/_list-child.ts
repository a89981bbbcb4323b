// Runs inside a test namespace: lists table inet t N times while another process churns it; prints JSON.

import { NfnlSocket } from '../../src/netlink/socket.ts';
import { listRuleset } from '../../src/nft/list.ts';

const rounds = Number(process.argv[2] ?? 100);
const sock = new NfnlSocket();
let ok = 0;
const errors: string[] = [];
let minStable = Number.POSITIVE_INFINITY;
for (let i = 0; i < rounds; i++) {
  try {
    const r = await listRuleset(sock, { family: 'inet', table: 't' });
    minStable = Math.min(minStable, r.sets.filter((s) => s.name.startsWith('keep')).length);
    ok++;
  } catch (error) {
    errors.push((error as Error).message);
  }
}
sock.close();
process.stdout.write(
  `${JSON.stringify({ ok, errors: errors.slice(0, 3), errorCount: errors.length, minStable })}\n`,
);
