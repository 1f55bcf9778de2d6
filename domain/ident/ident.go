// Package ident derives deterministic identifiers (RFC 4122 version 5
// UUIDs) so that re-processing the same input produces the same id. It is
// pure: no randomness, no clock.
package ident

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// laneNamespace is Lark's UUIDv5 namespace (itself a v5 UUID of "lark" in
// the URL namespace); every derived id lives under it.
const laneNamespace = "3c5b1c3e-6f0e-5a8e-9a4b-6c61726b0001"

// Derive returns the version 5 UUID of parts, joined by NUL, in Lark's
// namespace, formatted as a lower-case hyphenated string. Parts are joined
// with a separator that cannot occur in them unescaped, so ("a","bc") and
// ("ab","c") give different ids.
func Derive(parts ...string) string {
	ns, _ := hex.DecodeString(strings.ReplaceAll(laneNamespace, "-", ""))
	h := sha1.New()
	h.Write(ns)
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 4122 variant
	s := hex.EncodeToString(u[:])
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}
