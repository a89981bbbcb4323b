// The API lab's own ClusterNetworkPolicy CRD (policy.networking.k8s.io/v1alpha2, cluster-scoped), so the
// agent's watch can be tested against a real kube-apiserver. Not the upstream CRD (the project does not
// vendor it): a schema of ours that only fixes the shape the agent reads and leaves validation of the
// contents to tollgate's own normalization. Test harness only.
import type { AdminClient, KubeObject } from './admin-client.ts';
import { ApiServerError } from './errors.ts';

export const CNP_GROUP = 'policy.networking.k8s.io';
export const CNP_VERSION = 'v1alpha2';
export const CNP_CRD_NAME = `clusternetworkpolicies.${CNP_GROUP}`;
/** The collection the agent lists and watches. */
export const CNP_COLLECTION = `/apis/${CNP_GROUP}/${CNP_VERSION}/clusternetworkpolicies`;
const CRD_COLLECTION = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

export function clusterPolicyCrd(): KubeObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: CNP_CRD_NAME,
      // A *.k8s.io group needs this; "unapproved" is what the API server accepts for a non-upstream CRD.
      annotations: { 'api-approved.kubernetes.io': 'unapproved, the tollgate API lab test CRD' },
    },
    spec: {
      group: CNP_GROUP,
      scope: 'Cluster',
      names: {
        plural: 'clusternetworkpolicies',
        singular: 'clusternetworkpolicy',
        kind: 'ClusterNetworkPolicy',
        listKind: 'ClusterNetworkPolicyList',
        shortNames: ['cnp'],
      },
      versions: [
        {
          name: CNP_VERSION,
          served: true,
          storage: true,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                spec: {
                  type: 'object',
                  required: ['tier', 'priority', 'subject'],
                  properties: {
                    tier: { type: 'string' },
                    priority: { type: 'integer' },
                    subject: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    ingress: {
                      type: 'array',
                      items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    },
                    egress: {
                      type: 'array',
                      items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    },
                  },
                },
                status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              },
            },
          },
        },
      ],
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Creates the CRD and waits until its collection is served (Established, and a list answers). */
export async function installClusterPolicyCrd(admin: AdminClient, timeoutMs = 60_000): Promise<void> {
  const r = await admin.request('POST', CRD_COLLECTION, clusterPolicyCrd());
  if (r.status >= 300 && r.status !== 409)
    throw new ApiServerError(
      'E_APISERVER_HTTP',
      `create CustomResourceDefinition ${CNP_CRD_NAME}: ${r.status} ${String(r.body.message)}`,
      r.status,
    );
  await collectionAnswers(admin, 200, timeoutMs, (last) => `not served after ${timeoutMs} ms (last ${last})`);
}

/** Waits until listing the ClusterNetworkPolicies answers `status` (the CRD served, or gone). */
async function collectionAnswers(
  admin: AdminClient,
  status: number,
  timeoutMs: number,
  failure: (last: number) => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await admin.request('GET', `${CNP_COLLECTION}?limit=1`);
    if (list.status === status) return;
    if (Date.now() > deadline)
      throw new ApiServerError(
        'E_APISERVER_START',
        `CustomResourceDefinition ${CNP_CRD_NAME}: ${failure(list.status)}`,
      );
    await sleep(100);
  }
}

/** Deletes the CRD (and with it every ClusterNetworkPolicy) and waits until the collection is gone. */
export async function removeClusterPolicyCrd(admin: AdminClient, timeoutMs = 60_000): Promise<void> {
  await admin.remove(`${CRD_COLLECTION}/${CNP_CRD_NAME}`);
  await collectionAnswers(admin, 404, timeoutMs, () => `still served ${timeoutMs} ms after its deletion`);
}
