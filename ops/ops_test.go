// Package ops_test checks the operations assets against the code: the
// alert rules and the dashboard parse, and every Lark metric they query is
// one the code registers (a renamed metric must not silently blind them).
package ops_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"
)

var metricRef = regexp.MustCompile(`\blark_[a-z0-9_]+`)
var metricDef = regexp.MustCompile(`Name:\s+"(lark_[a-z0-9_]+)"`)

// definedMetrics scans the module's non-test Go files for registered names.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	defs := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "data") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricDef.FindAllStringSubmatch(string(b), -1) {
			defs[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) < 10 {
		t.Fatalf("found only %d metric definitions; is the scan broken?", len(defs))
	}
	return defs
}

func checkRefs(t *testing.T, file, text string, defs map[string]bool) {
	t.Helper()
	refs := metricRef.FindAllString(text, -1)
	if len(refs) == 0 {
		t.Fatalf("%s references no Lark metric", file)
	}
	for _, r := range refs {
		base := r
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed := strings.TrimSuffix(r, suffix); trimmed != r && defs[trimmed] {
				base = trimmed
			}
		}
		if !defs[base] {
			t.Errorf("%s uses %s, which no code registers", file, r)
		}
	}
}

func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	defs := definedMetrics(t)
	n := 0
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			if strings.Contains(r.Expr, "lark_") {
				checkRefs(t, "alert "+r.Alert, r.Expr, defs)
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d rules", n)
	}
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/lark.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("lark.json: %v", err)
	}
	defs := definedMetrics(t)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			checkRefs(t, "panel "+p.Title, q.Expr, defs)
		}
	}
}
