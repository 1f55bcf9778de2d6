package run_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/larkhq/lark/domain/run"
)

func TestDerivedIDs(t *testing.T) {
	ev, auto := "0b8f7c3e-5d2a-4c1e-9f3b-2a6d8e4c1b7a", "4f1d2c3b-aaaa-4bbb-8ccc-123456789abc"
	got := run.RunID(ev, auto)
	want := uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:lark:run:36:"+ev+":"+auto)).String()
	if got != want {
		t.Errorf("RunID = %s, want %s (RFC 4122 v5)", got, want)
	}
	if u := uuid.MustParse(got); u.Version() != 5 || u.Variant() != uuid.RFC4122 {
		t.Errorf("RunID %s: version %d variant %v", got, u.Version(), u.Variant())
	}
	if again := run.RunID(ev, auto); again != got {
		t.Errorf("RunID not stable: %s then %s", got, again)
	}
	if other := run.RunID(auto, ev); other == got {
		t.Error("RunID ignores argument order")
	}
	// Length prefixes keep ("a:b", "c") and ("a", "b:c") apart.
	if run.RunID("a:b", "c") == run.RunID("a", "b:c") {
		t.Error("RunID collides across the separator")
	}
	m := run.MessageID(got, "vip_mail")
	if wantM := uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:lark:message:36:"+got+":vip_mail")).String(); m != wantM {
		t.Errorf("MessageID = %s, want %s", m, wantM)
	}
	if m == run.MessageID(got, "thanks_mail") {
		t.Error("MessageID ignores the node")
	}
}
