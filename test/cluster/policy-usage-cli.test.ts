// The parser policy-usage-cli.ts reads `tollgate explain --policy`'s usage lines with, against the lines
// src/cli/policy-usage.ts really prints: a change of their wording fails here, not only on a real cluster.
import t from 'tap';
import { usageLines } from '../../src/cli/policy-usage.ts';
import { parseExplainUsage } from './policy-usage-cli.ts';

t.test('parseExplainUsage reads what usageLines prints', async (t) => {
  const text = [
    'NetworkPolicy use-cli/x',
    ...usageLines(
      {
        counting: ['tollgate-a', 'tollgate-b'],
        byDirection: {
          ingress: { allowed: 10, denied: 5, wouldDeny: 0 },
          egress: { allowed: 3, denied: 8, wouldDeny: 2 },
        },
      },
      '15m',
    ),
  ].join('\n');
  t.match(parseExplainUsage(text), {
    agents: 2,
    ingress: { allowed: 10, denied: 5 },
    egress: { allowed: 3, denied: 8 },
  });
  const none = usageLines(
    {
      counting: [],
      byDirection: {
        ingress: { allowed: 0, denied: 0, wouldDeny: 0 },
        egress: { allowed: 0, denied: 0, wouldDeny: 0 },
      },
    },
    '1h',
  ).join('\n');
  t.match(parseExplainUsage(none), { agents: 0, ingress: { allowed: 0, denied: 0 } });
  t.equal(parseExplainUsage('NetworkPolicy use-cli/x\n  selects every pod'), undefined, 'no usage part');
});
