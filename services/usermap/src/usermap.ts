/** A validated usermap held in memory, indexed for the lookups every service makes. */
import { type Identity, identityKey, type Person, type Role, type UsermapDoc } from './schema';

export interface LocalAccount {
  personId: string;
  name: string;
  username: string;
  uid: number;
  gid: number;
  groups: readonly string[];
}

export type IdentityLookup =
  | { status: 'active'; person: Person; account: LocalAccount }
  | { status: 'suspended' | 'retired'; person: Person };

export class UserMap {
  readonly doc: UsermapDoc;
  private readonly byIdentity = new Map<string, Person>();
  private readonly byUsername = new Map<string, Person>();
  private readonly byId = new Map<string, Person>();
  private readonly byUid = new Map<number, Person>();

  constructor(doc: UsermapDoc) {
    this.doc = doc;
    for (const p of doc.people) {
      this.byId.set(p.id, p);
      this.byUsername.set(p.account.username, p);
      this.byUid.set(p.account.uid, p);
      for (const ident of p.identities) this.byIdentity.set(identityKey(ident.iss, ident.sub), p);
    }
  }

  get size(): number {
    return this.doc.people.length;
  }

  /** Authorization is on (issuer, subject) only: never email, never eppn. */
  lookupIdentity(iss: string, sub: string): IdentityLookup | undefined {
    const person = this.byIdentity.get(identityKey(iss, sub));
    if (!person) return undefined;
    if (person.status !== 'active') return { status: person.status, person };
    return { status: 'active', person, account: accountOf(person) };
  }

  person(id: string): Person | undefined {
    return this.byId.get(id);
  }

  personByUsername(username: string): Person | undefined {
    return this.byUsername.get(username);
  }

  personByUid(uid: number): Person | undefined {
    return this.byUid.get(uid);
  }

  /** An active person's role on an instrument; suspended and retired people hold none. */
  role(personId: string, instrumentId: string): Role | undefined {
    const person = this.byId.get(personId);
    if (!person || person.status !== 'active') return undefined;
    return person.instruments[instrumentId];
  }

  /** The lowest free uid in the range, counting retired people's uids as taken forever. */
  nextFreeUid(): number | undefined {
    const used = new Set(this.doc.people.map((p) => p.account.uid));
    for (let uid = this.doc.uid_range.min; uid <= this.doc.uid_range.max; uid++) {
      if (!used.has(uid)) return uid;
    }
    return undefined;
  }
}

export function accountOf(person: Person): LocalAccount {
  return {
    personId: person.id,
    name: person.name,
    username: person.account.username,
    uid: person.account.uid,
    gid: person.account.gid,
    groups: person.account.groups,
  };
}

export function describeIdentity(ident: Pick<Identity, 'iss' | 'sub' | 'idp' | 'email'>): string {
  const extra = [ident.idp, ident.email].filter(Boolean).join(', ');
  return `${ident.sub} at ${ident.iss}${extra ? ` (${extra})` : ''}`;
}
