/** Who may use an instrument now: a role from the usermap, and a booking when one is required. */
import type { Instrument } from '@cloudlet/core';
import type { Role, UserMap } from '@cloudlet/usermap';

export type Access =
  | { ok: true; role: Role; until: Date | undefined }
  | { ok: false; reason: 'no_role' | 'not_booked'; message: string };

export function currentBooking(instrument: Instrument, personId: string, now: Date): { start: Date; end: Date } | undefined {
  for (const b of instrument.bookings) {
    if (b.person !== personId) continue;
    const start = new Date(b.start);
    const end = new Date(b.end);
    if (start <= now && now < end) return { start, end };
  }
  return undefined;
}

export function nextBooking(instrument: Instrument, personId: string, now: Date): { start: Date; end: Date } | undefined {
  return instrument.bookings
    .filter((b) => b.person === personId && new Date(b.start) > now)
    .map((b) => ({ start: new Date(b.start), end: new Date(b.end) }))
    .sort((a, b) => a.start.getTime() - b.start.getTime())[0];
}

export function checkAccess(map: UserMap, instrument: Instrument, personId: string, now = new Date()): Access {
  const role = map.role(personId, instrument.id);
  if (!role) return { ok: false, reason: 'no_role', message: `You hold no role on ${instrument.name}. Ask the facility for operator or viewer access.` };
  if (!instrument.booking_required) return { ok: true, role, until: undefined };
  const current = currentBooking(instrument, personId, now);
  if (current) return { ok: true, role, until: current.end };
  const next = nextBooking(instrument, personId, now);
  return {
    ok: false,
    reason: 'not_booked',
    message: next
      ? `${instrument.name} is booked for you from ${next.start.toISOString()} to ${next.end.toISOString()}; it is not your slot now.`
      : `You have no booking on ${instrument.name}. Book a slot with the facility first.`,
  };
}
