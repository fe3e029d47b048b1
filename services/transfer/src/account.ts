/**
 * Which cluster account acts for a person, and the check that logging in there really gives
 * that account. The same rule as transfer.ts's identity check (the usermap alone names the
 * account; `id` on the cluster must agree with it), for the remote-job and follow paths, which
 * talk to the cluster over ssh2 rather than OpenSSH.
 */
import { AppError, type RemoteId, type SshTarget } from '@cloudlet/core';
import type { UserMap } from '@cloudlet/usermap';
import type { ClusterConfig, TransferConfig } from './config';

/** Something a person must fix (usermap, host key, config) before the cluster is used for them. */
export class AccountBlocked extends AppError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'transfer_blocked', status: 409, publicMessage: message, cause });
  }
}

export interface ClusterAccount {
  cluster: ClusterConfig;
  username: string;
  uid: number;
  gid: number;
  target: SshTarget;
}

export function findCluster(config: TransferConfig, id: string): ClusterConfig {
  const cluster = config.clusters.find((c) => c.id === id);
  if (!cluster) throw new AppError(`unknown cluster ${JSON.stringify(id)} (configured: ${config.clusters.map((c) => c.id).join(', ') || 'none'})`, { code: 'unknown_cluster', status: 400 });
  return cluster;
}

export function resolveAccount(config: TransferConfig, usermap: UserMap, personId: string, clusterId: string): ClusterAccount {
  const cluster = config.clusters.find((c) => c.id === clusterId);
  if (!cluster) throw new AccountBlocked(`cluster ${clusterId} is not configured: add it to transfer.clusters`);
  const person = usermap.person(personId);
  if (!person) throw new AccountBlocked(`person ${personId} is not in the usermap`);
  if (person.status !== 'active') throw new AccountBlocked(`person ${personId} is ${person.status}; only active people use the clusters`);
  const account = person.clusters.find((c) => c.cluster === clusterId);
  if (!account) {
    throw new AccountBlocked(`person ${personId} has no account on cluster ${clusterId} in the usermap: add {cluster: ${clusterId}, username, uid, gid} to their clusters, as \`ssh ${cluster.host} id\` reports it`);
  }
  return {
    cluster,
    username: account.username,
    uid: account.uid,
    gid: account.gid,
    target: { host: cluster.host, port: cluster.port, user: account.username, keyFile: cluster.key_file, knownHostsFile: cluster.known_hosts_file },
  };
}

/** Parses `id -u; id -g; id -un` output. */
export function parseId(stdout: string): RemoteId | undefined {
  const [uid, gid, user] = stdout.split('\n');
  if (!/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '') || !user) return undefined;
  return { uid: Number(uid), gid: Number(gid), user };
}

/** Throws unless the account logged in to is the one the usermap records (uid and name). */
export function checkIdentity(seen: RemoteId, account: ClusterAccount, personId: string): void {
  if (seen.uid === account.uid && seen.user === account.username) return;
  throw new AccountBlocked(
    `identity mismatch on cluster ${account.cluster.id}: logging in as ${account.username} gives ${seen.user} uid ${seen.uid}, but the usermap records ${account.username} uid ${account.uid} for person ${personId}; ` +
      `jobs would run as someone else. Fix the clusters entry for ${account.cluster.id} of person ${personId} in the usermap (or the account on the cluster)`,
  );
}
