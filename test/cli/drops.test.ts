// `tollgate drops` (and `kubectl tollgate drops`): the agents' report lines read through the API as pod
// logs (a fake API server serving pods and pods/log), filtered, printed as report lines or JSON, followed
// live until SIGINT; an API refusal names the RBAC it needs.
import { execFile, spawn } from 'node:child_process';
import { delimiter, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { dropsCommand, formatReport, parseSince, reportMatches } from '../../src/cli/drops.ts';
import type { DropReport } from '../../src/nflog/report.ts';
import { reportLogLine, sampleReport } from '../_drop-reports.ts';
import { childEnv } from '../_tier.ts';
import { fakeCluster } from './_fake-cluster.ts';
import { runInProcess } from './_in-process.ts';

const root = resolve(import.meta.dirname, '../..');
const tollgate = join(root, 'bin/tollgate.js');
const scenario = join(root, 'examples/three-tier.yaml');
const run = promisify(execFile);

async function cli(file: string, args: string[], env: NodeJS.ProcessEnv = childEnv()) {
  try {
    const { stdout, stderr } = await run(process.execPath, [file, ...args], { cwd: root, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `tollgate drops ARGS` in this process; the followed case below and the plugin's run real processes. */
const inProcess = (args: string[]) => runInProcess(dropsCommand, args);

const report = (o: Partial<DropReport> = {}): DropReport =>
  sampleReport({
    src: { address: '10.244.2.10', pod: 'shop/web' },
    dst: { address: '10.244.1.10', pod: 'shop/db' },
    port: 3306,
    policies: ['shop/db-from-api'],
    ...o,
  });
const line = reportLogLine;

const toOutside = report({
  direction: 'egress',
  node: 'node-2',
  src: { address: '10.244.2.11', pod: 'other/job' },
  dst: { address: '203.0.113.9' },
  port: 443,
  policies: ['other/no-out'],
  at: '2026-12-01T18:00:01.000Z',
});
const audit = report({ kind: 'would-deny', policies: ['shop/audit-db'], at: '2026-12-01T18:00:02.000Z' });

t.test('the filters: namespace and pod at either end, a policy among them, the node', async (t) => {
  t.ok(reportMatches(report(), {}));
  t.ok(reportMatches(report(), { namespace: 'shop' }));
  t.notOk(reportMatches(toOutside, { namespace: 'shop' }), 'no shop pod at either end');
  t.ok(reportMatches(report(), { pod: 'shop/web' }), 'the source');
  t.ok(reportMatches(report(), { pod: 'shop/db' }), 'the destination');
  t.notOk(reportMatches(report(), { pod: 'shop/api' }));
  t.ok(reportMatches(report({ policies: ['a/x', 'shop/p'] }), { policy: 'shop/p' }));
  t.notOk(reportMatches(report(), { policy: 'shop/other' }));
  t.notOk(reportMatches(report(), { node: 'node-2' }));
  t.notOk(reportMatches(report(), { namespace: 'sho' }), 'a namespace, not a prefix');
  t.equal(
    formatReport(audit, 'text'),
    '2026-12-01T18:00:02.000Z node-1 shop/web -> shop/db:3306/TCP ingress shop/audit-db would-deny',
  );
  t.same(JSON.parse(formatReport(audit, 'json')), audit);
  t.equal(parseSince('10m'), 600);
  t.equal(parseSince('2h'), 7200);
  t.throws(() => parseSince('10 minutes'), { code: 'E_USAGE', message: /--since: '10 minutes'/ });
});

const agents = () => [
  {
    name: 'tollgate-a',
    node: 'node-1',
    lines: ['{"level":30,"msg":"synced"}', line(report()), 'a stray text line', line(audit)],
  },
  { name: 'tollgate-b', node: 'node-2', lines: [line(toOutside)] },
];

t.test("--no-follow prints every agent's reports, filtered, as lines or JSON", async (t) => {
  const api = await fakeCluster(scenario, undefined, agents());
  t.teardown(() => api.close());
  const all = await inProcess(['--kubeconfig', api.kubeconfig, '--no-follow']);
  t.equal(all.code, 0, all.stderr);
  t.same(all.stdout.trim().split('\n').sort(), [
    '2026-12-01T18:00:00.000Z node-1 shop/web -> shop/db:3306/TCP ingress shop/db-from-api',
    '2026-12-01T18:00:01.000Z node-2 other/job -> 203.0.113.9:443/TCP egress other/no-out',
    '2026-12-01T18:00:02.000Z node-1 shop/web -> shop/db:3306/TCP ingress shop/audit-db would-deny',
  ]);
  const logReads = api.requests.filter((r) => r.path.endsWith('/log'));
  t.equal(logReads.length, 2, 'one log read per agent pod');
  t.ok(logReads.every((r) => r.query.get('container') === 'agent' && r.query.get('sinceSeconds') === '600'));
  t.ok(
    logReads.every((r) => r.query.get('follow') === null),
    'not followed',
  );

  const json = await inProcess([
    '--kubeconfig',
    api.kubeconfig,
    '--no-follow',
    '-n',
    'other',
    '--output',
    'json',
  ]);
  t.equal(json.code, 0, json.stderr);
  t.same(
    json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    [toOutside],
  );

  const byPolicy = await inProcess([
    '--kubeconfig',
    api.kubeconfig,
    '--no-follow',
    '--policy',
    'shop/audit-db',
    '--since',
    '1h',
  ]);
  t.match(
    byPolicy.stdout.trim(),
    /^\S+ node-1 shop\/web -> shop\/db:3306\/TCP ingress shop\/audit-db would-deny$/,
  );
  const since = api.requests.filter((r) => r.path.endsWith('/log')).at(-1);
  t.equal(since?.query.get('sinceSeconds'), '3600');

  api.requests.length = 0;
  const byNode = await inProcess(['--kubeconfig', api.kubeconfig, '--no-follow', '--node', 'node-2']);
  t.equal(byNode.stdout.trim().split('\n').length, 1);
  t.same(
    api.requests.filter((r) => r.path.endsWith('/log')).map((r) => r.path),
    ['/api/v1/namespaces/tollgate-system/pods/tollgate-b/log'],
    "only that node's agent is read",
  );
});

t.test('bad input and a refused log: errors that name the flag or the RBAC needed', async (t) => {
  const api = await fakeCluster(scenario, undefined, [
    { name: 'tollgate-a', node: 'node-1', logStatus: 403 },
  ]);
  t.teardown(() => api.close());
  const refused = await inProcess(['--kubeconfig', api.kubeconfig, '--no-follow']);
  t.equal(refused.code, 1);
  t.match(
    refused.stderr,
    /reading the log of tollgate-system\/tollgate-a: .*403.*forbidden.*get on pods\/log/,
  );
  t.match(refused.stderr, /\[E_DROPS_API\]/);
  const bad = await inProcess(['--kubeconfig', api.kubeconfig, '--pod', 'web']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--pod: 'web' is not NAMESPACE\/NAME/);
  const none = await inProcess(['--kubeconfig', api.kubeconfig, '--no-follow', '--node', 'nowhere']);
  t.equal(none.code, 1);
  t.match(none.stderr, /no agent pods in tollgate-system with .* on node nowhere/);
});

/** Resolves with the child's stdout once it holds `count` lines (or rejects when the child exits first). */
function linesOf(child: ReturnType<typeof spawn>, count: number): Promise<string[]> {
  let out = '';
  return new Promise((resolve, reject) => {
    const check = () => {
      const lines = out.split('\n').filter(Boolean);
      if (lines.length >= count) resolve(lines);
    };
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      check();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} with ${JSON.stringify(out)}`)));
  });
}

t.test('followed live: a report logged later is printed at once; SIGINT ends it with 0', async (t) => {
  const api = await fakeCluster(scenario, undefined, agents());
  t.teardown(() => api.close());
  const child = spawn(process.execPath, [tollgate, 'drops', '--kubeconfig', api.kubeconfig, '-n', 'shop'], {
    cwd: root,
    env: childEnv(),
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const first = linesOf(child, 2);
  t.equal((await first).length, 2, 'the two shop reports already in the logs');
  const later = report({ src: { address: '10.244.1.12', pod: 'shop/api' }, at: '2026-12-01T18:00:09.000Z' });
  const next = linesOf(child, 1);
  api.log('tollgate-b', line(toOutside)); // filtered out: no shop pod
  api.log('tollgate-a', line(later));
  t.match((await next)[0], /^2026-12-01T18:00:09.000Z node-1 shop\/api -> shop\/db:3306\/TCP ingress/);
  t.ok(
    api.requests.filter((r) => r.path.endsWith('/log')).every((r) => r.query.get('follow') === 'true'),
    'followed',
  );
  child.kill('SIGINT');
  t.equal(await exited, 0);
});

t.test('kubectl tollgate drops reads the current context', async (t) => {
  const api = await fakeCluster(scenario, undefined, agents());
  t.teardown(() => api.close());
  const PATH = [dirname(process.execPath), process.env.PATH].join(delimiter);
  const r = await cli(join(root, 'bin/kubectl-tollgate.js'), ['drops', '--no-follow', '--pod', 'other/job'], {
    ...childEnv(),
    PATH,
    KUBECONFIG: api.kubeconfig,
  });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout.trim(), /^\S+ node-2 other\/job -> 203\.0\.113\.9:443\/TCP egress other\/no-out$/);
});

t.test(
  'following: a log that ends is followed again from where it ended, without repeating lines',
  async (t) => {
    const { followDrops } = await import('../../src/cli/drops.ts');
    const queries: Record<string, string | undefined>[] = [];
    const first = line(report());
    const second = line(audit);
    let stopNow!: () => void;
    const stop = new Promise<void>((r) => {
      stopNow = r;
    });
    const printed: string[] = [];
    const client = {
      listPage: async () => ({
        items: [{ metadata: { name: 'tollgate-a' }, spec: { nodeName: 'node-1' } }],
        resourceVersion: '1',
        continue: undefined,
      }),
      followLines: async (
        _path: string,
        query: Record<string, string | undefined>,
        onLine: (l: string) => void,
        onDone: (e: unknown) => void,
      ) => {
        queries.push(query);
        const controller = new AbortController();
        if (queries.length === 1) {
          // The agent restarted: its log stream ends after one line.
          onLine(first);
          setImmediate(() => onDone(null));
        } else {
          // Followed again: the overlap repeats the first line, then a new one.
          onLine(first);
          onLine(second);
          setImmediate(stopNow);
          controller.signal.addEventListener('abort', () =>
            onDone(Object.assign(new Error('aborted'), { name: 'AbortError' })),
          );
        }
        return controller;
      },
    };
    await followDrops(
      client,
      {
        agentNamespace: 'tollgate-system',
        selector: 's',
        container: 'agent',
        filter: {},
        sinceSeconds: 60,
        follow: true,
        output: 'text',
        relistMs: 10,
      },
      { out: (x) => printed.push(x), err: (x) => t.fail(x) },
      stop,
    );
    t.equal(queries.length, 2, 'followed twice');
    t.equal(queries[0]?.sinceSeconds, '60');
    t.match(
      queries[1]?.sinceTime,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
      'again from where it ended (RFC 3339)',
    );
    t.equal(queries[1]?.sinceSeconds, undefined);
    t.same(
      printed,
      [formatReport(report(), 'text'), formatReport(audit, 'text')],
      'the overlap is not printed twice',
    );
  },
);
