package service

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkExplainRunHTTP1000Steps measures GET /v1/automation-runs/{id}/explain
// end to end (auth, reading the run's 1,000 events from the event store,
// describing every step, replaying the history through the current state
// machine) for a run of 998 condition nodes. Issue 5's target: < 50 ms.
func BenchmarkExplainRunHTTP1000Steps(b *testing.B) {
	e := setupB(b)
	const conditions = 998
	nodes := make([]any, conditions)
	for i := range conditions {
		n := map[string]any{"id": fmt.Sprintf("c%d", i), "type": "condition",
			"condition": map[string]any{"operator": "event_key", "key": "total", "comparator": "greater_than", "value": i % 7}}
		if i+1 < conditions {
			n["yes"], n["no"] = fmt.Sprintf("c%d", i+1), fmt.Sprintf("c%d", i+1)
		}
		nodes[i] = n
	}
	e.createAutomation(map[string]any{"name": "long", "start": "c0", "nodes": nodes,
		"trigger": map[string]any{"type": "custom_event", "event_name": "go"}}, true)
	e.mustStatus(e.do("POST", "/v1/contacts", e.key, map[string]any{"email_address": "long@example.com"}), 201)
	e.sendEvent("long@example.com", "go", map[string]any{"total": 3})
	var id string
	deadline := time.Now().Add(30 * time.Second)
	for id == "" {
		if ids := e.runIDs(""); len(ids) == 1 {
			id = ids[0]
		} else if time.Now().After(deadline) {
			b.Fatal("no run started")
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	e.waitRun(id, "completed")

	r := e.mustStatus(e.do("GET", "/v1/automation-runs/"+id+"/explain", e.key, nil), 200)
	if steps := len(r.data()["steps"].([]any)); steps != conditions+2 || r.data()["replay_verified"] != true {
		b.Fatalf("explanation has %d steps (want %d), replay_verified %v", steps, conditions+2, r.data()["replay_verified"])
	}
	b.ResetTimer()
	for b.Loop() {
		e.mustStatus(e.do("GET", "/v1/automation-runs/"+id+"/explain", e.key, nil), 200)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/explain")
}
