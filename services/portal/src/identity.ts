/** What the portal shows a signed-in person: derived afresh from the usermap on every request. */
import type { Instrument } from '@cloudlet/core';
import { type IdentityLookup, type LocalAccount, type Role, type UserMap } from '@cloudlet/usermap';
import type { SignedInIdentity } from './oidc';

export type Standing =
  | { kind: 'mapped'; account: LocalAccount; instruments: { instrument: Instrument; role: Role }[]; clusters: { cluster: string; username: string; verified: boolean }[] }
  | { kind: 'unmapped' }
  | { kind: 'suspended' | 'retired'; personName: string };

export function standingOf(map: UserMap, instruments: readonly Instrument[], identity: SignedInIdentity): Standing {
  const found: IdentityLookup | undefined = map.lookupIdentity(identity.iss, identity.sub);
  if (!found) return { kind: 'unmapped' };
  if (found.status !== 'active') return { kind: found.status, personName: found.person.name };
  const person = found.person;
  return {
    kind: 'mapped',
    account: found.account,
    instruments: instruments.flatMap((instrument) => {
      const role = person.instruments[instrument.id];
      return role ? [{ instrument, role }] : [];
    }),
    clusters: person.clusters.map((c) => ({ cluster: c.cluster, username: c.username, verified: c.verified_at !== undefined })),
  };
}
