package run

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
)

// namespaceURL is RFC 4122's name space for URLs (6ba7b811-9dad-11d1-80b4-00c04fd430c8).
func namespaceURL() [16]byte {
	return [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
}

// RunID derives a run's id from the trigger event's id and the automation's
// id: a UUIDv5 in the URL name space of the name
// "urn:lark:run:<len(eventID)>:<eventID>:<automationID>". Handling the same
// event twice therefore addresses the same run-{id} stream, and RunStarted
// appended with expected revision "no stream" starts one run.
func RunID(triggerEventID, automationID string) string {
	return uuidV5(namespaceURL(), fmt.Sprintf("urn:lark:run:%d:%s:%s", len(triggerEventID), triggerEventID, automationID))
}

// MessageID derives the id of the email a run sends at a node, the same on
// every attempt and every replay: a UUIDv5 of
// "urn:lark:message:<len(runID)>:<runID>:<nodeID>". The sender makes the
// Message-ID header from it ("<id@domain>").
func MessageID(runID, nodeID string) string {
	return uuidV5(namespaceURL(), fmt.Sprintf("urn:lark:message:%d:%s:%s", len(runID), runID, nodeID))
}

// uuidV5 is RFC 4122 §4.3 with SHA-1, formatted in the canonical 8-4-4-4-12 form.
func uuidV5(ns [16]byte, name string) string {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = (u[6] & 0x0f) | 0x50
	u[8] = (u[8] & 0x3f) | 0x80
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return string(buf[:])
}
