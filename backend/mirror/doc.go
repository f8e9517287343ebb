// Package mirror holds the rules that turn IDENT's facts into what amoCRM
// shows: one contact per patient, one lead per appointment chain. It is pure:
// no I/O, no clock of its own (callers pass now), no database, queue or HTTP.
// The sync workers load facts, call these functions and write what they
// return.
//
// Promises, rule by rule:
//
//   - State (Rules.ReceptionState), first match wins: cancelled with a no-show
//     reason (Rules.NoShowReasonIDs, "8" by default) → StateNoShow; any other
//     cancellation → StateCancelled; ReceptionEnded or CheckIssued set →
//     StateCompleted; ReceptionStarted or PatientAppeared set → StateArrived;
//     plan end at least Rules.NoShowGrace (24 h by default) before now →
//     StateNoShow; otherwise StatePlanned. "Cancelled" means
//     ReceptionCanceled set OR a cancel reason set, the same reading the
//     connector uses for the first visit. A plan end that is missing, equal to
//     or before the plan start is read as start + MinReceptionLength. Naive
//     local times are read in the clinic's zone; the grace comparison is
//     between instants, so the zone's offset (UTC+5, DST or none) is honoured.
//     Rules.NextReevaluation says when a planned reception will expire into a
//     no-show, because no row changes at that moment.
//   - Pipeline (PipelineOf): primary when the patient had no completed
//     reception before this one, ordered by (PlanStart, reception id), using
//     the patient's first visit over the full history; else repeat.
//   - Moves (ResolveChains): receptions linked by TransferFromID form a chain
//     that is one lead, stored under the chain's root and carrying the facts
//     of its current reception. Cycles and missing links are resolved without
//     looping; forks pick the leaf with the later plan start, then the higher
//     id. A moved-away reception whose successor has not arrived is reported
//     by Rules.MovedAway so its "moved" cancellation never shows as cancelled.
//   - Identity (Phones, SplitPhones, Adopt): phones become E.164 via
//     backend/phone; an existing amoCRM contact is adopted for a patient only
//     when its phones point at exactly one patient, that patient is linked to
//     no contact, the contact is linked to nobody and no other contact
//     claims the same patient. Nothing else is merged.
//   - Content (BuildLead, BuildContact): the facts a lead or contact carries,
//     with a content hash that changes exactly when a sent fact changes.
package mirror
