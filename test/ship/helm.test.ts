// The Helm chart charts/tollgate, rendered by the real helm binary (scripts/go-tool.sh builds it from the Go
// module proxy on a cold machine): its default render must be the objects of daemonset/, and its values must
// land where they should. A missing helm fails the test; it is never skipped.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { REPO } from './_helpers.ts';

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML; the assertions check the shape.
type Obj = any;

const CHART = join(REPO, 'charts/tollgate');

function parse(text: string, where: string): Obj[] {
  return parseAllDocuments(text).flatMap((doc, i) => {
    if (doc.errors.length > 0) throw new Error(`${where}: document ${i}: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as Obj;
    return obj === null ? [] : [obj];
  });
}

const manifests = (dir: string): Obj[] =>
  readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) => parse(readFileSync(join(dir, f), 'utf8'), `${dir}/${f}`));

const key = (o: Obj): string => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
const byKey = (objs: Obj[]): Record<string, Obj> => Object.fromEntries(objs.map((o) => [key(o), o]));

// `kubectl apply -f daemonset/` applies the directory's own files; the cleanup lives in a subdirectory.
const installed = manifests(join(REPO, 'daemonset'));
const cleanup = manifests(join(REPO, 'daemonset/cleanup'));
const namespace = installed.find((o) => o.kind === 'Namespace')!.metadata.name as string;
const withoutNamespace = installed.filter((o) => o.kind !== 'Namespace');

t.test('charts/tollgate with the real helm', async (t) => {
  // A cold machine builds helm first (about 3 minutes on 2 cores; more under load).
  t.setTimeout(1_800_000);
  const tool = spawnSync(join(REPO, 'scripts/go-tool.sh'), ['helm'], {
    encoding: 'utf8',
    timeout: 1_500_000,
  });
  const helm = tool.stdout.trim();
  if (tool.status !== 0 || helm === '') {
    t.fail(
      `no helm binary: scripts/go-tool.sh helm failed (status ${tool.status}); it needs Go and the module proxy`,
      {
        stderr: tool.stderr.slice(-4000),
      },
    );
    return;
  }
  const run = (args: string[]) => spawnSync(helm, args, { encoding: 'utf8', timeout: 120_000 });
  const render = (...set: string[]): Obj[] => {
    const r = run([
      'template',
      'tollgate',
      CHART,
      '--namespace',
      namespace,
      ...set.flatMap((s) => ['--set', s]),
    ]);
    if (r.status !== 0) throw new Error(`helm template ${set.join(' ')} failed: ${r.stderr}`);
    return parse(r.stdout, 'helm template');
  };

  t.test('the default render is daemonset/, without the Namespace', async (t) => {
    const got = render();
    t.same(Object.keys(byKey(got)).sort(), Object.keys(byKey(withoutNamespace)).sort(), 'the same objects');
    t.same(byKey(got), byKey(withoutNamespace), 'deep equal, field by field');
    t.notOk(
      got.some(
        (o) => o.metadata?.labels?.['helm.sh/chart'] || o.metadata?.labels?.['app.kubernetes.io/managed-by'],
      ),
      'no Helm labels that daemonset/ lacks',
    );
  });

  t.test('createNamespace=true adds the Namespace: exactly daemonset/', async (t) => {
    t.same(byKey(render('createNamespace=true')), byKey(installed), 'deep equal, Namespace included');
  });

  t.test(
    'cleanup.enabled=true: the cleanup DaemonSet of daemonset/cleanup/ in place of the agent',
    async (t) => {
      const want = [...withoutNamespace.filter((o) => o.kind !== 'DaemonSet'), ...cleanup];
      t.same(byKey(render('cleanup.enabled=true')), byKey(want), 'deep equal');
    },
  );

  t.test('values land where they should, and nowhere else', async (t) => {
    const got = byKey(
      render(
        'image.repository=registry.example:5000/tollgate',
        'image.tag=0.2.0-rc1',
        'image.pullPolicy=Always',
        'logLevel=debug',
        'metricsAddress=[::]:9900',
        'agent.verifyIntervalMs=1000000',
        'agent.bootClosed=false',
        'agent.stateDir=off',
        'agent.livenessTimeoutMs=240000',
        'agent.extraArgs[0]=--heap-growth-percent=0',
        'agent.established=cut',
        'agent.dropReports=false',
        'agent.dropReportRate=5/minute',
        'agent.dropReportBurst=3',
        'agent.nflogGroup=7',
        'resources.limits.memory=512Mi',
        'nodeSelector.pool=edge',
        'tolerations=null',
        'podAnnotations.prometheus\\.io/scrape=true',
      ),
    );
    // The same edits made by hand to daemonset/'s DaemonSet must give the render.
    const want = structuredClone(byKey(withoutNamespace));
    const ds = want[`DaemonSet/${namespace}/tollgate`];
    const pod = ds.spec.template.spec;
    const c = pod.containers[0];
    c.image = 'registry.example:5000/tollgate:0.2.0-rc1';
    c.imagePullPolicy = 'Always';
    c.args = [
      'agent',
      '--metrics-addr=[::]:9900',
      '--state-dir=off',
      '--liveness-timeout-ms=240000',
      '--boot-closed=false',
      '--verify-interval-ms=1000000',
      '--established=cut',
      '--drop-reports=off',
      '--drop-report-rate=5/minute',
      '--drop-report-burst=3',
      '--nflog-group=7',
      '--log-level=debug',
      '--heap-growth-percent=0',
    ];
    c.ports[0].containerPort = 9900;
    c.resources.limits.memory = '512Mi';
    delete c.volumeMounts;
    delete pod.volumes;
    pod.nodeSelector = { 'kubernetes.io/os': 'linux', pool: 'edge' };
    delete pod.tolerations;
    ds.spec.template.metadata.annotations = { 'prometheus.io/scrape': 'true' };
    t.same(got, want, 'only the fields the values name changed');
  });

  t.test('every flag the chart can pass is one `tollgate agent --help` lists', async (t) => {
    const all = render(
      'logLevel=info',
      'agent.bootClosed=true',
      'agent.verifyIntervalMs=1',
      'agent.minSyncIntervalMs=1',
      'agent.watchQuietMs=1',
      'agent.relistIntervalMs=1',
      'agent.heapGrowthPercent=1',
      'agent.established=keep',
      'agent.dropReports=true',
      'agent.dropReportRate=1/second',
      'agent.dropReportBurst=1',
      'agent.nflogGroup=1',
    );
    const args: string[] = all.find((o) => o.kind === 'DaemonSet').spec.template.spec.containers[0].args;
    const flags = args.filter((a) => a.startsWith('--')).map((a) => a.replace(/=.*$/, ''));
    t.equal(flags.length, 15, `every option set: ${flags.join(' ')}`);
    t.ok(args.includes('--drop-reports=on'), 'dropReports true is --drop-reports=on');
    const help = spawnSync(process.execPath, [join(REPO, 'bin/tollgate.js'), 'agent', '--help'], {
      encoding: 'utf8',
    });
    t.equal(help.status, 0, 'tollgate agent --help runs');
    for (const flag of flags)
      t.match(help.stdout, new RegExp(`^\\s+${flag}[ =]`, 'm'), `the agent takes ${flag}`);
  });

  t.test('bad values fail with the value named', async (t) => {
    for (const [set, field] of [
      ['logLevel=verbose', 'logLevel'],
      ['metricsAddress=off', 'metricsAddress'],
      ['agent.verifyIntervalMs=soon', 'verifyIntervalMs'],
      ['agent.verifyIntervlMs=5', 'verifyIntervlMs'],
      ['agent.established=sometimes', 'established'],
      ['agent.dropReportRate=20', 'dropReportRate'],
      ['agent.dropReportBurst=0', 'dropReportBurst'],
      ['agent.nflogGroup=70000', 'nflogGroup'],
    ] as const) {
      const r = run(['template', 'tollgate', CHART, '--set', set]);
      t.not(r.status, 0, `--set ${set} is refused`);
      t.match(r.stderr, field, `the error names ${field}`, { stderr: r.stderr });
    }
  });

  t.test('helm lint --strict passes; the chart follows the package version', async (t) => {
    const lint = run(['lint', '--strict', CHART, '--namespace', namespace]);
    t.equal(lint.status, 0, 'helm lint --strict passes', { stdout: lint.stdout, stderr: lint.stderr });
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8'), 'Chart.yaml')[0];
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
    t.equal(chart.appVersion, pkg.version, 'appVersion (the default image tag) is the package version');
  });
});
