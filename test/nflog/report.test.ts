// The drop report's texts (prefix, scenario line, log record) round-trip and refuse what is not in form.
import t from 'tap';
import {
  type DropReport,
  formatPrefix,
  parsePrefix,
  parseReportLine,
  REPORT_MESSAGE,
  reportLine,
  reportOfLogLine,
} from '../../src/nflog/report.ts';
import { sampleReport } from '../_drop-reports.ts';

const report: DropReport = sampleReport({
  node: 'node1',
  src: { address: '10.244.1.3', pod: 'x/b' },
  dst: { address: '10.244.1.2', pod: 'x/a' },
  policies: ['x/z', 'x/deny-a'],
  at: '2026-12-01T17:00:00.000Z',
});

t.test('prefix round-trips and fits the kernel limit', async (t) => {
  const p = formatPrefix({ direction: 'egress', kind: 'would-deny', id: 'eg-0123abcd' });
  t.equal(p, 'tg:e:w:eg-0123abcd');
  t.ok(Buffer.byteLength(formatPrefix({ direction: 'ingress', kind: 'deny', id: 'x'.repeat(100) })) <= 127);
  t.same(parsePrefix(p), { direction: 'egress', kind: 'would-deny', id: 'eg-0123abcd' });
  t.equal(parsePrefix('some other rule'), undefined);
  t.throws(() => formatPrefix({ direction: 'ingress', kind: 'deny', id: 'a b' }), {
    code: 'E_REPORT_FORMAT',
  });
});

t.test('scenario line (semantics 26) round-trips with policies as a set', async (t) => {
  const line = reportLine(report);
  t.equal(line, 'x/b -> x/a:80/TCP ingress x/deny-a,x/z');
  t.same(parseReportLine('x/b -> x/a:80/TCP ingress x/z,x/deny-a'), parseReportLine(line));
  const w = parseReportLine('x/c -> 203.0.113.10:443/TCP egress x/audit-a would-deny');
  t.equal(w.kind, 'would-deny');
  t.equal(w.dst, '203.0.113.10');
  t.equal(w.port, 443);
  const v6 = parseReportLine('x/b -> [fd00:10:244:1::2]:80/TCP ingress x/p');
  t.same([v6.dst, v6.port, parseReportLine(line).dst], ['fd00:10:244:1::2', 80, 'x/a']);
  t.throws(() => parseReportLine('x/b -> x/a:80/TCP sideways x/p'), { code: 'E_REPORT_FORMAT' });
  t.throws(() => parseReportLine('x/b -> x/a:99999/TCP ingress x/p'), { code: 'E_REPORT_FORMAT' });
});

t.test('log record: reports are read, other lines ignored, broken reports refused', async (t) => {
  const line = JSON.stringify({ level: 40, time: 1, msg: REPORT_MESSAGE, report });
  t.same(reportOfLogLine(line), report);
  t.equal(reportOfLogLine(JSON.stringify({ msg: 'programmed' })), undefined);
  t.equal(reportOfLogLine('not json connection denied'), undefined);
  t.throws(() => reportOfLogLine(JSON.stringify({ msg: REPORT_MESSAGE, report: { kind: 'deny' } })), {
    code: 'E_REPORT_FORMAT',
  });
});
