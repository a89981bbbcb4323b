// `tollgate lab run` over many files says which file of how many runs and the time so far (on a terminal):
// runScenarioFiles reports progress before each file, in order, and the report output is unchanged.
import { join, resolve } from 'node:path';
import t from 'tap';
import { runScenarioFiles } from '../../src/cli/scenarios.ts';
import { LabError } from '../../src/lab/errors.ts';
import { refuseUnprobeable } from '../../src/lab/scenario.ts';
import { modelDriver } from '../../src/scenario/model.ts';
import type { World } from '../../src/scenario/world.ts';

const examples = resolve(import.meta.dirname, '../../examples');

t.test('progress names file n of N with the elapsed time, before each file', async (t) => {
  const files = [join(examples, 'three-tier.yaml'), join(examples, 'default-policies.yaml')];
  const progress: string[] = [];
  const out: string[] = [];
  const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`err: ${s}`) };
  const status = await runScenarioFiles(files, () => modelDriver, io, {
    matrices: false,
    progress: (l) => progress.push(l),
  });
  t.equal(status, 0);
  t.match(progress, [
    /^\[1\/2\] .*three-tier\.yaml \(\d+ s elapsed\)$/,
    /^\[2\/2\] .*default-policies\.yaml/,
  ]);
  t.equal(progress.length, 2);
  t.notOk(
    out.some((l) => l.startsWith('err:')),
    'progress goes only where it is asked to',
  );
  t.match(out.at(-1), /passed, 0 failed/);
});

t.test(
  'a file the lab cannot probe (SCTP) is reported not probed, before any lab; the rest run',
  async (t) => {
    const sctp = resolve(import.meta.dirname, '../scenarios/cnp/c-admin-ingress-sctp.yaml');
    const tcp = resolve(import.meta.dirname, '../scenarios/cnp/c-admin-ingress-tcp.yaml');
    const started: string[] = [];
    // The lab drivers' first step (refuseUnprobeable), then the model instead of a lab.
    const driver = () => ({
      ...modelDriver,
      async start(world: World) {
        await refuseUnprobeable(world.scenario);
        started.push(world.scenario.name);
      },
    });
    const notProbed = (e: unknown) =>
      e instanceof LabError && e.code === 'E_LAB_UNSUPPORTED' ? e.message : undefined;
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`err: ${s}`) };
    t.equal(await runScenarioFiles([sctp, tcp], driver, io, { matrices: false, notProbed }), 0);
    t.same(started, ['c-admin-ingress-tcp'], 'the SCTP file never started');
    t.match(
      out[0],
      /^skip c-admin-ingress-sctp: not probed: .*cannot probe SCTP: the lab has no SCTP \(.*:9003\/SCTP\)$/,
    );
    t.match(out.at(-1), /^12 passed, 0 failed, 1 of 2 files not probed$/);
    out.length = 0;
    t.equal(await runScenarioFiles([sctp], driver, io, { matrices: false, notProbed }), 1, 'none probed: 1');
    await t.rejects(runScenarioFiles([sctp], driver, io, { matrices: false }), { code: 'E_LAB_UNSUPPORTED' });
  },
);
