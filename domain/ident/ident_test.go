package ident_test

import (
	"regexp"
	"testing"

	"github.com/larkhq/lark/domain/ident"
)

func TestDerive(t *testing.T) {
	a := ident.Derive("contact", "ws", "jane@example.com")
	if a != ident.Derive("contact", "ws", "jane@example.com") {
		t.Error("not deterministic")
	}
	if ident.Derive("ab", "c") == ident.Derive("a", "bc") {
		t.Error("part boundaries ignored")
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a) {
		t.Errorf("%s is not a v5 UUID", a)
	}
}
