package liquid

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The templates of SPEC §2.4's example automation.
const (
	specSubject = "Thank you, {{ contact.first_name | default: 'friend' }}"
	specBody    = "Order {{ event.order_id }}{% if event.currency == 'USD' %} in dollars{% endif %}."
)

func scope(contact, event map[string]any) map[string]any {
	return map[string]any{
		"contact": contact,
		"event":   event,
		"event_meta": map[string]any{
			"name": "purchase_completed", "id": "7f1c0c7e-0000-4000-8000-000000000001",
			"received_at": time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC),
		},
	}
}

func TestRender(t *testing.T) {
	e := New(Config{})
	tests := []struct {
		name, src string
		scope     map[string]any
		want      string
	}{
		{"subject with first name", specSubject, scope(map[string]any{"first_name": "Jane"}, nil), "Thank you, Jane"},
		{"subject default filter", specSubject, scope(map[string]any{"email_address": "j@x.io"}, nil), "Thank you, friend"},
		{"subject default on empty name", specSubject, scope(map[string]any{"first_name": ""}, nil), "Thank you, friend"},
		{"body if true", specBody, scope(nil, map[string]any{"order_id": "A-17", "currency": "USD"}), "Order A-17 in dollars."},
		{"body if false", specBody, scope(nil, map[string]any{"order_id": "A-18", "currency": "EUR"}), "Order A-18."},
		{"body missing properties", specBody, scope(nil, nil), "Order ."},
		{"json.Number compares as a number", "{% if event.total > 50 %}VIP{% else %}regular{% endif %} {{ event.total }}",
			scope(nil, map[string]any{"total": json.Number("99.99")}), "VIP 99.99"},
		{"json.Number integer", "{{ event.qty | plus: 1 }}", scope(nil, map[string]any{"qty": json.Number("41")}), "42"},
		{"nested property and array", "{{ event.order.items[0].sku }} {{ event.order.items | size }}",
			scope(nil, map[string]any{"order": map[string]any{"items": []any{map[string]any{"sku": "A1"}, map[string]any{"sku": "B2"}}}}), "A1 2"},
		{"event_meta", "{{ event_meta.name }} {{ event_meta.received_at | date: '%Y-%m-%d' }}", scope(nil, nil), "purchase_completed 2026-12-01"},
		{"contact custom property", "{{ contact.plan | upcase }}", scope(map[string]any{"plan": "gold"}, nil), "GOLD"},
		{"nil scope", "Hello {{ contact.first_name }}!", nil, "Hello !"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Render(tt.src, tt.scope)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderDoesNotModifyScope(t *testing.T) {
	e := New(Config{})
	ev := map[string]any{"total": json.Number("5")}
	if _, err := e.Render("{{ event.total }}", scope(nil, ev)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"total": json.Number("5")}, ev); diff != "" {
		t.Errorf("scope changed (-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	e := New(Config{})
	for _, ok := range []string{specSubject, specBody, "plain text", "{{ 'a | nope' }}", `{{ "x|y" | upcase }}`, "{{ a | default: 'b' | upcase }}", "{% for x in event.items %}{{ x | size }}{% endfor %}"} {
		if err := e.Check(ok); err != nil {
			t.Errorf("Check(%q) = %v, want nil", ok, err)
		}
	}
	tests := []struct {
		src       string
		undefined bool
	}{
		{"{{ contact.first_name | shout }}", true},
		{"{% if a %}{{ a | nosuchfilter: 1 }}{% endif %}", true},
		{"{% if %}", false},
		{"{% if a %}never closed", false},
		{"{% bogus %}", false},
		{"{% endif %}", false},
		{"{{ a | }}", false},
	}
	for _, tt := range tests {
		err := e.Check(tt.src)
		if err == nil {
			t.Errorf("Check(%q) = nil, want an error", tt.src)
			continue
		}
		if got := errors.Is(err, ErrUndefinedFilter); got != tt.undefined {
			t.Errorf("Check(%q) = %v; undefined filter %v, want %v", tt.src, err, got, tt.undefined)
		}
		if tt.undefined && !strings.Contains(err.Error(), "undefined filter") {
			t.Errorf("Check(%q) = %q, want a message naming the undefined filter", tt.src, err)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	e := New(Config{MaxOutputBytes: 100})
	if _, err := e.Render("{{ x | shout }}", nil); !errors.Is(err, ErrUndefinedFilter) {
		t.Errorf("undefined filter: got %v, want ErrUndefinedFilter", err)
	}
	if _, err := e.Render("{% if %}", nil); err == nil {
		t.Error("syntax error: got nil error")
	}
	if _, err := e.Render("{% for i in (1..1000) %}xx{% endfor %}", nil); !errors.Is(err, ErrOutputTooLarge) {
		t.Errorf("large output: got %v, want ErrOutputTooLarge", err)
	}
	if got, err := e.Render("{% for i in (1..10) %}xx{% endfor %}", nil); err != nil || len(got) != 20 {
		t.Errorf("small loop: got %q, %v", got, err)
	}
}

func TestCacheIsBounded(t *testing.T) {
	e := New(Config{CacheSize: 8})
	for i := 0; i < 100; i++ {
		if _, err := e.Render(fmt.Sprintf("n{{ %d }}", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	e.mu.Lock()
	n, m := e.lru.Len(), len(e.byKey)
	e.mu.Unlock()
	if n != 8 || m != 8 {
		t.Errorf("cache holds %d entries (%d keys), want 8", n, m)
	}
	// The most recent template is still cached and still renders right.
	if got, err := e.Render("n{{ 99 }}", nil); err != nil || got != "n99" {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestConcurrentRender(t *testing.T) {
	e := New(Config{CacheSize: 4})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				name := fmt.Sprintf("c%d", (g+i)%6)
				got, err := e.Render(specSubject+" {{ event.n }}", scope(map[string]any{"first_name": name}, map[string]any{"n": json.Number(fmt.Sprint(i))}))
				if want := fmt.Sprintf("Thank you, %s %d", name, i); err != nil || got != want {
					t.Errorf("got %q, %v; want %q", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkRenderCached(b *testing.B) {
	e := New(Config{})
	sc := scope(map[string]any{"first_name": "Jane"}, map[string]any{"order_id": "A-17", "currency": "USD"})
	for b.Loop() {
		if _, err := e.Render(specBody, sc); err != nil {
			b.Fatal(err)
		}
	}
}
