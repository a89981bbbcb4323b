// Errors raised by the network-namespace lab and its API servers; each carries a stable code callers can
// match on.
// Must not be used outside src/lab and its callers (the CLI, tests, benchmarks).
import { TollgateError } from '../util/errors.ts';

export type LabErrorCode =
  | 'E_LAB_SPEC' // the LabSpec is inconsistent (duplicate key, address outside the node's CIDR, ...)
  | 'E_LAB_COMMAND' // a command run to build or inspect the lab failed
  | 'E_LAB_AGENT' // an in-namespace agent died or did not answer
  | 'E_LAB_UNKNOWN' // an endpoint, node or namespace that the lab does not have
  | 'E_LAB_UNSUPPORTED' // something this kernel or lab cannot do (SCTP)
  | 'E_LAB_DOWN'; // the lab was already torn down

export class LabError extends TollgateError<LabErrorCode> {
  constructor(code: LabErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export type ApiServerErrorCode =
  | 'E_APISERVER_BINARIES' // kube-apiserver or etcd is not built (scripts/k8s-binaries.sh)
  | 'E_APISERVER_START' // a process exited or did not become ready in time
  | 'E_APISERVER_HTTP' // the API answered with an error status
  | 'E_APISERVER_UNREACHABLE'; // no answer (stopped, frozen, or the forwarder is gone)

export class ApiServerError extends TollgateError<ApiServerErrorCode> {
  readonly status: number | undefined;
  constructor(code: ApiServerErrorCode, message: string, status?: number, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}
