package esdb

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeMetaMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{}`,
		`{"schema":"1","workspace_id":"ws-1"}`,
		`{"idempotency_key":"k 1","idempotency_index":"3","schema":"1","workspace_id":"w"}`,
		`{"a":""}`,
		`{"a":"é ✓ 😀"}`,
		`{"a":"x\"y"}`,
		`{"a":"\u00e9"}`,
		`{ "a" : "b" }`,
		`{"a":"b","a":"c"}`,
		`{"a":1}`,
		`{"a":null}`,
		`{"a":"b",}`,
		`{"a":"b"`,
		`{"a""b"}`,
		`{"a":"b"}x`,
		`{"a":"b" "c":"d"}`,
		"{\"a\":\"b\tc\"}",
		"{\"a\":\"\xff\"}",
		`{"a":"\xff"}`,
		`[]`,
		`null`,
		`{`,
		`{"`,
		`{"a":"`,
		`{"a"`,
		`{"a":`,
		`{,}`,
	} {
		var want map[string]string
		wantErr := json.Unmarshal([]byte(in), &want)
		got, gotErr := decodeMeta([]byte(in))
		if (wantErr != nil) != (gotErr != nil) {
			t.Errorf("decodeMeta(%q) error %v, want error %v", in, gotErr, wantErr)
			continue
		}
		if wantErr != nil {
			continue
		}
		if want == nil {
			want = map[string]string{}
		}
		if got == nil {
			got = map[string]string{}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("decodeMeta(%q) (-want +got):\n%s", in, d)
		}
	}
}

func TestDecodeFlatMetaTakesWhatEncodeWrites(t *testing.T) {
	t.Parallel()
	enc, err := Encode([]Proposed{{Type: "T", WorkspaceID: "ws-9", Data: 1,
		Meta: map[string]string{"idempotency_key": "order 17/ü", "idempotency_index": "0"}}})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeFlatMeta(enc[0].Metadata)
	if !ok {
		t.Fatalf("fast path refused %s", enc[0].Metadata)
	}
	want := map[string]string{"idempotency_key": "order 17/ü", "idempotency_index": "0", MetaSchema: "1", MetaWorkspaceID: "ws-9"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(`{"schema":"1","workspace_id":"w"}`)
	f.Add(`{"a":"b","c":"d"}`)
	f.Fuzz(func(t *testing.T, in string) {
		var want map[string]string
		wantErr := json.Unmarshal([]byte(in), &want)
		got, gotErr := decodeMeta([]byte(in))
		if (wantErr != nil) != (gotErr != nil) {
			t.Fatalf("decodeMeta(%q) error %v, want error %v", in, gotErr, wantErr)
		}
		if wantErr != nil {
			return
		}
		if len(want) != len(got) {
			t.Fatalf("decodeMeta(%q) = %v, want %v", in, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("decodeMeta(%q) = %v, want %v", in, got, want)
			}
		}
	})
}
