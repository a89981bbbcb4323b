// The agent with drop reports on, on fakes (a fake packet source, the fake kernel): the table carries the
// report rules, a group held by another socket shows in /readyz's body while the agent stays ready
// (reports are not enforcement) and is retried, and reports reach the log and /metrics.
import { pino } from 'pino';
import t from 'tap';
import { Agent } from '../../src/agent/agent.ts';
import type { ReportSource } from '../../src/agent/reports.ts';
import { scaledMs } from '../../src/lab/load.ts';
import { NflogError } from '../../src/nflog/errors.ts';
import type { NflogPacket } from '../../src/nflog/packet.ts';
import { formatPrefix, REPORT_MESSAGE } from '../../src/nflog/report.ts';
import { FakeApi, until } from '../k8s/fake-api.ts';
import { policy } from '../policy/builders.ts';
import { cluster, FakeKernel, P, TEST_AGENT_OPTIONS } from './_fixtures.ts';

t.test(
  'reports on: rules in the table, EPERM shown but ready, then reports logged and counted',
  async (t) => {
    const api = new FakeApi();
    cluster(api);
    api.put(P.np, 'deny', policy('x/deny', { podSelector: {}, policyTypes: ['Ingress'] }));
    let deliver: ((p: NflogPacket, at: number) => void) | undefined;
    let attempts = 0;
    const source: ReportSource = async (group, onPacket) => {
      attempts++;
      if (attempts === 1)
        throw new NflogError('E_NFLOG_BIND', `nflog group ${group}: EPERM: another socket is bound`, {
          group,
          errno: 1,
        });
      deliver = onPacket;
      return { stats: { received: 0, lost: 0, overruns: 0, undecodable: 0 }, close: () => {} };
    };
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (l: string) => lines.push(l) });
    const programmer = new FakeKernel();
    const a = new Agent(
      api,
      programmer,
      log,
      {
        ...TEST_AGENT_OPTIONS,
        metricsAddr: '127.0.0.1:0',
        reports: { group: 100, rate: 20, per: 'second', burst: 5 },
      },
      { reports: source },
    );
    t.teardown(() => a.stop());
    await a.start();
    await until(() => a.ready, 'ready', scaledMs(10_000));
    const url = (path: string) => `http://127.0.0.1:${a.httpAddress!.port}${path}`;
    const table = (await programmer.listTable())!;
    t.match(table, /ct state new jump reports/);
    t.match(table, /reports limit name "reports-20-second-5" counter drop/);
    if (attempts === 1) {
      const r = await fetch(url('/readyz'));
      t.equal(r.status, 200, 'ready: enforcement does not depend on reports');
      t.match(await r.text(), /^ok\ndrop reports: nflog group 100: EPERM/);
    }
    await until(() => deliver !== undefined, 'the retried bind', scaledMs(10_000));
    t.equal(await (await fetch(url('/readyz'))).text(), 'ok\n', 'bound: nothing more to show');
    const chain = a.reconciler.current!.podChains.get('x/a')!.ingress!;
    deliver!(
      {
        group: 100,
        family: 2,
        prefix: formatPrefix({ direction: 'ingress', kind: 'deny', id: chain }),
        payloadBytes: 60,
        headers: {
          ipVersion: 4,
          src: '10.244.1.11',
          dst: '10.244.1.10',
          protocol: 6,
          protocolName: 'tcp',
          length: 60,
          dport: 80,
        },
      },
      Date.now(),
    );
    const reported = lines.filter((l) => l.includes(REPORT_MESSAGE));
    t.equal(reported.length, 1);
    t.match(JSON.parse(reported[0]!), {
      msg: REPORT_MESSAGE,
      report: { src: { pod: 'x/b' }, dst: { pod: 'x/a' }, policies: ['x/deny'], port: 80 },
    });
    const metrics = await (await fetch(url('/metrics'))).text();
    t.match(metrics, /tollgate_denied_connections_total\{direction="ingress",namespace="x",kind="deny"\} 1/);
    t.match(metrics, /tollgate_drop_report_bind_failures_total 1/);
    t.match(metrics, /tollgate_drop_reports_listening 1/);
    t.match(metrics, /tollgate_drop_reports_suppressed_total 0/);
    t.ok(
      lines.filter((l) => l.includes('cannot bind')).length === 1,
      'the bind failure was logged once, with the group and errno',
    );
  },
);
