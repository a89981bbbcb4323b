// The curl command line of a TCP probe (an HTTP GET whose answer means allowed) and the environment it
// runs in, shared by the lab and the real-cluster scenario driver. Builds argv only; runs nothing.

/** curl must never use a proxy from the environment: probes stay inside the lab. */
export const CURL_ENV = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', NO_PROXY: '*' };

/**
 * GET http://address:port/ within `timeoutMs` (connecting within at most 1 s of it); `bind`: the source
 * address to send from (default: the one the route picks).
 */
export function curlProbeArgv(address: string, port: number, timeoutMs: number, bind?: string): string[] {
  const host = address.includes(':') ? `[${address}]` : address;
  const seconds = (ms: number) => (ms / 1000).toFixed(3);
  return [
    'curl',
    '--silent',
    '--show-error',
    '--globoff',
    '--noproxy',
    '*',
    '--connect-timeout',
    seconds(Math.min(1000, timeoutMs)),
    '--max-time',
    seconds(timeoutMs),
    ...(bind ? ['--interface', bind] : []),
    `http://${host}:${port}/`,
  ];
}
