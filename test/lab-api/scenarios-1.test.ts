// Every shared scenario through the API path (part 1 of 3: a fresh lab + kube-apiserver + agents per
// scenario takes ~15 s, so each file stays well inside the CI budget): objects written to a real API server
// in the lab, one `tollgate agent` per node with the shipped RBAC, real traffic. Prints the report with
// matrices when an expectation fails.
import t from 'tap';
import { requireBinaries, scenarioFiles, scenarioTests, skipUnlessRoot } from './_helpers.ts';

t.setTimeout(15 * 60_000); // a loaded machine (parallel test files, benchmarks) can double the ~3 min
const part = scenarioFiles().filter((_, i) => i % 3 === 0);

if (skipUnlessRoot) t.plan(0, skipUnlessRoot);
else if (await requireBinaries(t)) scenarioTests(t, part);
