// The error contract: typed errors with literal codes, one errno table, isNotFound/isAlreadyExists, and a
// source guard so that anonymous `throw new Error` and bare errno numbers cannot come back. No root needed.
import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join, relative, resolve } from 'node:path';
import t from 'tap';
import { errnoName, NetlinkError } from '../../src/netlink/errors.ts';
import { NftValidationError, RenderError, ValueError } from '../../src/nft/errors.ts';
import {
  ERRNO,
  errnoNameOf,
  InternalError,
  isAlreadyExists,
  isNotFound,
  TollgateError,
  UsageError,
} from '../../src/util/errors.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|js)$/.test(entry.name)) out.push(path);
  }
  return out;
}

const THROW_ERROR = /\bthrow\s+new\s+Error\s*\(/;
// A nonzero number compared with, or passed as, an errno (0 is the netlink ACK, not an error).
const ERRNO_LITERAL: RegExp[] = [
  /errno\w*\s*[!=]==?\s*-?[1-9]\d*/i,
  /-?[1-9]\d*\s*[!=]==?\s*\w*\.?errno\b/i,
  /\berrno\s*:\s*-?[1-9]\d*/,
  /\b(fail|fromErrno)\(\s*-?[1-9]\d*/,
  /\bconst\s+E[A-Z0-9]+\s*=\s*\d+/,
];
// Testing for ENOENT/EEXIST by name or code, instead of through the helpers.
const NAME_TEST = /(errnoName|\.code)\s*[!=]==?\s*'(ENOENT|EEXIST)'/;

function offenders(patterns: RegExp[], skip: (file: string) => boolean): string[] {
  const found: string[] = [];
  for (const file of [...sourceFiles(join(ROOT, 'src')), ...sourceFiles(join(ROOT, 'bin'))]) {
    const rel = relative(ROOT, file);
    if (skip(rel)) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (patterns.some((p) => p.test(line))) found.push(`${rel}:${i + 1}: ${line.trim()}`);
      });
  }
  return found;
}

t.test('the guards catch the forms they forbid (and pass the allowed ones)', async (t) => {
  const bad = [
    "if (!set) throw new Error('lookup without a set name');",
    'const vanished = error instanceof NetlinkError && error.errno === 2;',
    "const code = errno === 85 ? 'E_NETLINK_GENID' : 'E_NETLINK';",
    'const family = familyFromNumber(msg.family) ?? fail(97);',
    'errno: 85,',
    'const ENOBUFS = 105;',
  ];
  for (const line of bad)
    t.ok(
      [THROW_ERROR, ...ERRNO_LITERAL].some((p) => p.test(line)),
      line,
    );
  t.ok(NAME_TEST.test("if (e instanceof NetlinkError && e.errnoName === 'ENOENT') {"));
  t.ok(NAME_TEST.test("if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;"));
  const good = [
    'if (e.errno === 0) resolve(out);',
    'const code = errno === ERRNO.ERESTART ? 1 : 2;',
    'fail(ERRNO.EAFNOSUPPORT);',
    "throw new NftValidationError('meta expression', 'unsupported key 3', 'key');",
  ];
  for (const line of good)
    t.notOk(
      [THROW_ERROR, ...ERRNO_LITERAL].some((p) => p.test(line)),
      line,
    );
});

t.test('no anonymous throw new Error in src/ or bin/', async (t) => {
  t.same(
    offenders([THROW_ERROR], () => false),
    [],
  );
});

t.test('no bare errno numbers in src/ or bin/ (use ERRNO from src/util/errors.ts)', async (t) => {
  t.same(
    offenders(ERRNO_LITERAL, (f) => f === 'src/util/errors.ts'),
    [],
  );
});

t.test('ENOENT/EEXIST are tested through isNotFound/isAlreadyExists only', async (t) => {
  t.same(
    offenders([NAME_TEST], (f) => f === 'src/util/errors.ts'),
    [],
  );
});

t.test('the errno table holds the Linux numbers', async (t) => {
  for (const [name, num] of Object.entries(ERRNO)) {
    if (name === 'ERESTART') t.equal(num, 85, 'ERESTART is kernel-internal (include/linux/errno.h)');
    else t.equal(num, (constants.errno as Record<string, number>)[name], name);
    t.equal(errnoName(num), name, `errnoName(${num})`);
  }
});

t.test('isNotFound and isAlreadyExists', async (t) => {
  const enoent = NetlinkError.fromErrno(ERRNO.ENOENT, { messageType: 'DELSET', object: 'set inet t s' });
  const eexist = NetlinkError.fromErrno(ERRNO.EEXIST, { messageType: 'NEWSETELEM', object: 'set inet t s' });
  const ebusy = NetlinkError.fromErrno(ERRNO.EBUSY, { messageType: 'DELCHAIN', object: 'chain inet t c' });
  t.ok(isNotFound(enoent));
  t.notOk(isAlreadyExists(enoent));
  t.ok(isAlreadyExists(eexist));
  t.notOk(isNotFound(eexist));
  t.notOk(isNotFound(ebusy));
  t.notOk(isAlreadyExists(ebusy));
  t.match(eexist.message, /NEWSETELEM for set inet t s failed: EEXIST: an element/);

  // A real file-system error from Node: code 'ENOENT', errno negative.
  let fsError: unknown;
  try {
    readFileSync(join(ROOT, 'does-not-exist', String(process.pid)));
  } catch (e) {
    fsError = e;
  }
  t.ok(isNotFound(fsError), 'a missing file');
  t.notOk(isAlreadyExists(fsError));

  // Our own codes start with E_ and are never taken for an errno.
  t.equal(errnoNameOf(new UsageError('bad flag')), undefined);
  t.notOk(isNotFound(new NetlinkError('E_NETLINK_IO', 'socket closed')));
  for (const v of [undefined, null, 'ENOENT', 2, {}, { code: 2 }]) t.notOk(isNotFound(v), String(v));
});

t.test('every error class is a TollgateError with its literal code', async (t) => {
  const cases: [TollgateError, string][] = [
    [new ValueError('not an IPv4 address: "x"'), 'E_NFT_VALUE'],
    [new RenderError('reads register 1 before anything was loaded into it'), 'E_NFT_RENDER'],
    [new NftValidationError('meta expression', 'unsupported key 99', 'key'), 'E_NFT_INVALID'],
    [new InternalError('plan set 3 missing'), 'E_INTERNAL'],
    [NetlinkError.fromErrno(ERRNO.ERESTART), 'E_NETLINK_GENID'],
    [NetlinkError.fromErrno(ERRNO.ENOENT), 'E_NETLINK'],
  ];
  for (const [e, code] of cases) {
    t.ok(e instanceof TollgateError, e.name);
    t.equal(e.code, code, e.name);
  }
  // @ts-expect-error: codes are literal unions, a made-up code does not compile (checked by npm run lint).
  t.ok(new NetlinkError('E_MADE_UP', 'x'));
});
