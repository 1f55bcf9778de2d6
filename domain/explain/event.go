// Package explain builds the auditor's explanations of SPEC §2.6 from
// history: why a stored custom event fired the automations it fired and
// not the others ([Event]), and what a run did at every step, checked by
// replaying its recorded history through the current state machine ([Run]).
//
// It is pure: the caller (projections/explain) reads the histories from the
// event store and tells, for every history event, whether it was stored
// before the custom event in $all. The rules are exactly the process
// manager's (commands/runs.Manager): an event fires every automation of its
// workspace that was active at that point of history and whose trigger
// event name is byte-for-byte equal, if the contact existed at that point.
package explain

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/contact"
)

// Historic is one event of an aggregate's history, with whether it was
// stored before the explained custom event in $all.
type Historic[E any] struct {
	Event  E
	Before bool
}

// AutomationHistory is one automation's whole stream.
type AutomationHistory struct {
	ID     string
	Events []Historic[automation.Event]
}

// RunFound is a run that exists for an (event, automation) pair.
type RunFound struct {
	ID     string
	Status string
}

// EventFacts are the facts an event's explanation is computed from.
type EventFacts struct {
	EventID     string
	WorkspaceID string
	Email       string
	Name        string
	ReceivedAt  time.Time
	// Processed reports whether the run process manager has handled the
	// event (its checkpoint is at or past the event's position).
	Processed bool
	// Contact is the whole stream of the contact the email address names.
	Contact []Historic[contact.Event]
	// Automations are the whole streams of the workspace's automations.
	Automations []AutomationHistory
	// RunIDFunc derives the run id of (event, automation).
	RunIDFunc func(eventID, automationID string) string
	// Runs are the runs that exist, by run id.
	Runs map[string]RunFound
}

// ContactAtEvent is the contact as it was when the event was stored.
type ContactAtEvent struct {
	Existed   bool   `json:"existed"`
	ContactID string `json:"contact_id,omitempty"`
	// CreatedAt is when the contact that existed then was created.
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// DeletedBefore is set when a contact with this address had been
	// deleted before the event (and not created again).
	DeletedBefore *time.Time `json:"deleted_before_event_at,omitempty"`
	// CreatedLater is set when the contact was created only after the event.
	CreatedLater *time.Time `json:"created_after_event_at,omitempty"`
}

// Matched is an automation whose trigger matched the event.
type Matched struct {
	AutomationID     string `json:"automation_id"`
	Name             string `json:"name"`
	Version          int    `json:"version"`
	TriggerEventName string `json:"trigger_event_name"`
	// Fired reports whether a run was (or, before processing, will be)
	// started: false when the contact did not exist then.
	Fired bool `json:"fired"`
	// RunID is the run the event starts for this automation (derived).
	RunID     string `json:"run_id,omitempty"`
	RunStatus string `json:"run_status,omitempty"`
	// Reason says why it did not fire, or that the run is missing or pending.
	Reason string `json:"reason,omitempty"`
}

// Reasons an automation did not fire.
const (
	ReasonNameDiffers     = "event_name_differs"
	ReasonPaused          = "paused"
	ReasonDraft           = "draft"
	ReasonContactMissing  = "contact_missing"
	ReasonContactDeleted  = "contact_deleted"
	ReasonPending         = "pending"     // the process manager has not reached the event yet
	ReasonRunMissing      = "run_missing" // processed, matched, contact existed, yet no run: an inconsistency
	ReasonCreatedLater    = "created_after_event"
	ReasonActivatedLater  = "activated_after_event"
	ReasonNameMatchedLate = "trigger_renamed_after_event"
)

// NotMatched is an automation that existed when the event was stored and
// did not fire for it.
type NotMatched struct {
	AutomationID     string `json:"automation_id"`
	Name             string `json:"name"`
	Status           string `json:"status"` // at that point of history
	Version          int    `json:"version"`
	TriggerEventName string `json:"trigger_event_name"`
	Reason           string `json:"reason"`
	// NameMatches reports whether the trigger name equals the event's
	// (so a paused or draft automation would otherwise have fired).
	NameMatches bool `json:"name_matches"`
	// NearMiss is set when the names differ only in case or by a small edit.
	NearMiss     bool       `json:"near_miss"`
	NearMissKind string     `json:"near_miss_kind,omitempty"`
	Distance     int        `json:"edit_distance,omitempty"`
	PausedAt     *time.Time `json:"paused_at,omitempty"`
	// Later notes what changed after the event (activated, renamed).
	Later   []string `json:"later,omitempty"`
	Message string   `json:"message"`
}

// CreatedLater is an automation created only after the event was stored.
type CreatedLater struct {
	AutomationID     string    `json:"automation_id"`
	Name             string    `json:"name"`
	TriggerEventName string    `json:"trigger_event_name"`
	CreatedAt        time.Time `json:"created_at"`
	NameMatches      bool      `json:"name_matches"`
	NearMiss         bool      `json:"near_miss"`
	NearMissKind     string    `json:"near_miss_kind,omitempty"`
}

// EventExplanation answers "why did this event fire what it fired?".
type EventExplanation struct {
	EventID      string         `json:"event_id"`
	WorkspaceID  string         `json:"workspace_id"`
	EventName    string         `json:"event_name"`
	EmailAddress string         `json:"email_address"`
	ReceivedAt   time.Time      `json:"received_at"`
	Processed    bool           `json:"processed"`
	Contact      ContactAtEvent `json:"contact"`
	Matched      []Matched      `json:"matched"`
	NotMatched   []NotMatched   `json:"not_matched"`
	CreatedLater []CreatedLater `json:"created_later"`
	Summary      string         `json:"summary"`
}

// Event explains a stored custom event from its facts.
func Event(f EventFacts) EventExplanation {
	x := EventExplanation{EventID: f.EventID, WorkspaceID: f.WorkspaceID, EventName: f.Name, EmailAddress: f.Email,
		ReceivedAt: f.ReceivedAt, Processed: f.Processed,
		Matched: []Matched{}, NotMatched: []NotMatched{}, CreatedLater: []CreatedLater{}}
	x.Contact = contactAt(f.Contact)
	noContact := ReasonContactMissing
	if x.Contact.DeletedBefore != nil {
		noContact = ReasonContactDeleted
	}
	autos := append([]AutomationHistory(nil), f.Automations...)
	sort.Slice(autos, func(i, j int) bool { return autos[i].ID < autos[j].ID })
	for _, a := range autos {
		var then, now automation.State
		var pausedAt *time.Time
		for _, h := range a.Events {
			now = automation.Evolve(now, h.Event)
			if h.Before {
				then = now
				if p, ok := h.Event.(automation.Paused); ok {
					at := p.At
					pausedAt = &at
				}
				if _, ok := h.Event.(automation.Activated); ok {
					pausedAt = nil
				}
			}
		}
		if !now.Exists {
			continue
		}
		if !then.Exists {
			trig := now.Definition.Trigger.EventName
			kind, _ := NearMiss(f.Name, trig)
			x.CreatedLater = append(x.CreatedLater, CreatedLater{AutomationID: a.ID, Name: now.Definition.Name,
				TriggerEventName: trig, CreatedAt: now.CreatedAt, NameMatches: trig == f.Name,
				NearMiss: kind != "", NearMissKind: kind})
			continue
		}
		trig := then.Definition.Trigger.EventName
		if then.Status == automation.StatusActive && trig == f.Name {
			m := Matched{AutomationID: a.ID, Name: then.Definition.Name, Version: then.Version, TriggerEventName: trig}
			switch {
			case !x.Contact.Existed:
				m.Reason = noContact
			default:
				m.Fired = true
				m.RunID = f.RunIDFunc(f.EventID, a.ID)
				if r, ok := f.Runs[m.RunID]; ok {
					m.RunStatus = r.Status
				} else if !f.Processed {
					m.Reason = ReasonPending
				} else {
					m.Reason = ReasonRunMissing
				}
			}
			x.Matched = append(x.Matched, m)
			continue
		}
		nm := NotMatched{AutomationID: a.ID, Name: then.Definition.Name, Status: string(then.Status), Version: then.Version,
			TriggerEventName: trig, NameMatches: trig == f.Name}
		if kind, d := NearMiss(f.Name, trig); kind != "" {
			nm.NearMiss, nm.NearMissKind, nm.Distance = true, kind, d
		}
		switch {
		case then.Status == automation.StatusPaused:
			nm.Reason, nm.PausedAt = ReasonPaused, pausedAt
			nm.Message = "the automation was paused when the event was stored"
		case then.Status != automation.StatusActive:
			nm.Reason = ReasonDraft
			nm.Message = "the automation was a draft (never activated) when the event was stored"
		default:
			nm.Reason = ReasonNameDiffers
			nm.Message = fmt.Sprintf("trigger event name %q is not byte-for-byte equal to %q", trig, f.Name)
		}
		if nm.NearMiss {
			if nm.NearMissKind == NearMissCase {
				nm.Message += fmt.Sprintf("; near miss: %q and %q differ only in letter case", trig, f.Name)
			} else {
				nm.Message += fmt.Sprintf("; near miss: %q is %d edit(s) away from %q", trig, nm.Distance, f.Name)
			}
		}
		if then.Status != automation.StatusActive && now.Status == automation.StatusActive {
			nm.Later = append(nm.Later, ReasonActivatedLater)
		}
		if trig != f.Name && now.Definition.Trigger.EventName == f.Name {
			nm.Later = append(nm.Later, ReasonNameMatchedLate)
		}
		x.NotMatched = append(x.NotMatched, nm)
	}
	x.Summary = summary(x)
	return x
}

func contactAt(hist []Historic[contact.Event]) ContactAtEvent {
	var c ContactAtEvent
	var s contact.State
	var deletedAt *time.Time
	for _, h := range hist {
		if !h.Before {
			if cr, ok := h.Event.(contact.Created); ok && !s.Exists && c.CreatedLater == nil {
				at := cr.At
				c.CreatedLater = &at
			}
			continue
		}
		s = contact.Evolve(s, h.Event)
		switch e := h.Event.(type) {
		case contact.Deleted:
			at := e.At
			deletedAt = &at
		case contact.Created:
			deletedAt = nil
		}
	}
	if s.Exists {
		c.Existed, c.ContactID = true, s.ID
		at := s.CreatedAt
		c.CreatedAt = &at
		return c
	}
	c.DeletedBefore = deletedAt
	return c
}

func summary(x EventExplanation) string {
	var fired []string
	for _, m := range x.Matched {
		if m.Fired {
			fired = append(fired, fmt.Sprintf("%q", m.Name))
		}
	}
	var b strings.Builder
	switch {
	case len(fired) > 0:
		fmt.Fprintf(&b, "Fired %d automation(s): %s.", len(fired), strings.Join(fired, ", "))
	case len(x.Matched) > 0 && x.Contact.DeletedBefore != nil:
		fmt.Fprintf(&b, "Fired nothing: %d automation(s) matched, but the contact %s had been deleted before the event.",
			len(x.Matched), x.EmailAddress)
	case len(x.Matched) > 0:
		fmt.Fprintf(&b, "Fired nothing: %d automation(s) matched, but %s was not a contact of the workspace when the event was stored.",
			len(x.Matched), x.EmailAddress)
	default:
		fmt.Fprintf(&b, "Fired nothing: no active automation had the trigger event name %q when the event was stored.", x.EventName)
	}
	near := 0
	for _, n := range x.NotMatched {
		if n.NearMiss {
			near++
		}
	}
	if near > 0 {
		fmt.Fprintf(&b, " %d near miss(es) in trigger names.", near)
	}
	if !x.Processed {
		b.WriteString(" The run manager has not processed the event yet.")
	}
	return b.String()
}
