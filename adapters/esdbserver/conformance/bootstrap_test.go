package conformance

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/larkhq/lark/adapters/esdbserver/esdbtest"
)

// rawConn dials the test's server with plain grpc (the client's generated
// stubs), for the few wire facts the esdb.Client does not expose. It skips
// when the URL needs TLS.
func rawConn(t *testing.T, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	url := esdbtest.URL(t)
	cfg, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatalf("parse %q: %v", url, err)
	}
	if !cfg.DisableTLS {
		t.Skip("raw wire checks need a tls=false connection string")
	}
	conn, err := grpc.NewClient(cfg.Address, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.Address, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// The client's first call runs discovery (GetSupportedMethods) and must then
// succeed; a failed discovery closes the client permanently.
func TestBootstrapFirstCallSucceeds(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	s := streamName(t, "")
	res, err := c.AppendToStream(opCtx(t), s, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, jsonEvent("Bootstrapped", 0))
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	if res.NextExpectedVersion != 0 {
		t.Errorf("first append NextExpectedVersion = %d, want 0", res.NextExpectedVersion)
	}
	// A second call on the same client reuses the discovered connection.
	if got := mustReadStream(t, c, s, esdb.ReadStreamOptions{}, maxCount); len(got) != 1 {
		t.Errorf("read after first append: got %d events, want 1", len(got))
	}
}

// GetSupportedMethods must report a numeric version and lower-cased method
// names for what is implemented.
func TestSupportedMethods(t *testing.T) {
	t.Parallel()
	conn := rawConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := serverfeatures.NewServerFeaturesClient(conn).GetSupportedMethods(ctx, &shared.Empty{})
	if err != nil {
		t.Fatalf("GetSupportedMethods: %v", err)
	}
	parts := strings.Split(got.EventStoreServerVersion, ".")
	if len(parts) < 3 {
		t.Errorf("version %q: want at least three dot-separated parts", got.EventStoreServerVersion)
	}
	for i := 0; i < 3 && i < len(parts); i++ {
		if _, err := strconv.Atoi(parts[i]); err != nil {
			t.Errorf("version %q: part %d (%q) is not an integer", got.EventStoreServerVersion, i, parts[i])
		}
	}
	methods := map[string][]string{}
	for _, m := range got.Methods {
		if m.ServiceName != strings.ToLower(m.ServiceName) || m.MethodName != strings.ToLower(m.MethodName) {
			t.Errorf("method %s/%s is not lower-case", m.ServiceName, m.MethodName)
		}
		methods[m.ServiceName+"/"+m.MethodName] = m.Features
	}
	const streams = "event_store.client.streams.streams/"
	for _, m := range []string{"read", "append", "delete", "tombstone"} {
		if _, ok := methods[streams+m]; !ok {
			t.Errorf("method %s%s not advertised; got %v", streams, m, methods)
		}
	}
	if f := methods[streams+"read"]; !contains(f, "position") || !contains(f, "events") {
		t.Errorf("read features = %v, want position and events", f)
	}
	if !esdbtest.External() {
		// The embedded server implements neither BatchAppend nor persistent
		// subscriptions, so it must not advertise them.
		for name := range methods {
			if name == streams+"batchappend" || strings.Contains(name, "persistent") {
				t.Errorf("embedded server advertises unimplemented %s", name)
			}
		}
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// The client pings every 10 s even with no open stream; the server must
// permit that rather than answer GOAWAY too_many_pings (which would drop the
// connection). grpc-go tolerates two bad pings, so the third, at about 30 s,
// is where a strict server disconnects.
func TestKeepalivePingsWithoutStreamsAllowed(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 35 s")
	}
	t.Parallel()
	conn := rawConn(t, grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time:                10 * time.Second,
		Timeout:             5 * time.Second,
		PermitWithoutStream: true,
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := serverfeatures.NewServerFeaturesClient(conn).GetSupportedMethods(ctx, &shared.Empty{}); err != nil {
		t.Fatalf("GetSupportedMethods: %v", err)
	}
	if s := conn.GetState(); s != connectivity.Ready {
		t.Fatalf("state after first call = %v, want READY", s)
	}
	idle, cancelIdle := context.WithTimeout(context.Background(), 35*time.Second)
	defer cancelIdle()
	if conn.WaitForStateChange(idle, connectivity.Ready) {
		t.Fatalf("connection left READY (now %v) while idle with keepalive pings: server sent GOAWAY?", conn.GetState())
	}
}
