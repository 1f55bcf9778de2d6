package esdbserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Version is the EventStoreDB version the server reports.
const Version = "24.10.0"

// maxMessageSize is the gRPC message limit, as the client's (17 MiB).
const maxMessageSize = 17 << 20

// Config configures Start.
type Config struct {
	Listen     string                // e.g. "127.0.0.1:0"; "" means "127.0.0.1:2113"
	DataDir    string                // required; created if missing
	Registerer prometheus.Registerer // may be nil (no metrics registered)
	Logger     *slog.Logger          // may be nil
}

// Server is a running embedded event store.
type Server struct {
	store     *store
	grpc      *grpc.Server
	lis       net.Listener
	log       *slog.Logger
	met       *metrics
	shutdown  chan struct{} // closed when Close begins: ends subscriptions
	closeOnce sync.Once
	closeErr  error
	served    chan struct{}
}

// Start opens the store in cfg.DataDir and returns once the gRPC listener is
// bound and serving. It fails if another process has the data dir open.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("esdbserver: DataDir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:2113"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("esdbserver: create data dir: %w", err)
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("esdbserver: register metrics: %w", err)
	}
	st, err := openStore(cfg.DataDir, log, met)
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		_ = st.close()
		return nil, fmt.Errorf("esdbserver: listen on %s: %w", cfg.Listen, err)
	}
	s := &Server{
		store:    st,
		lis:      lis,
		log:      log,
		met:      met,
		shutdown: make(chan struct{}),
		served:   make(chan struct{}),
	}
	s.grpc = grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(maxMessageSize),
		grpc.MaxSendMsgSize(maxMessageSize),
		grpc.ForceServerCodecV2(newRawCodec()),
		grpc.WaitForHandlers(true), // Stop waits for handlers: none may outlive the store
	)
	serverfeatures.RegisterServerFeaturesServer(s.grpc, featuresService{})
	streams.RegisterStreamsServer(s.grpc, &streamsService{srv: s})
	gossip.RegisterGossipServer(s.grpc, gossipService{id: uuid.New(), addr: s.Addr()})
	go func() {
		defer close(s.served)
		if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("grpc serve", "err", err)
		}
	}()
	log.Info("event store started", "addr", s.Addr(), "data", cfg.DataDir, "head", st.published())
	return s, nil
}

// Addr returns the bound address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.lis.Addr().String() }

// URL returns the client connection string for the server (on the loopback
// address when it listens on all interfaces).
func (s *Server) URL() string {
	host := "127.0.0.1"
	if a, ok := s.lis.Addr().(*net.TCPAddr); ok {
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
		return "esdb://" + net.JoinHostPort(host, strconv.Itoa(a.Port)) + "?tls=false"
	}
	return "esdb://" + s.Addr() + "?tls=false"
}

// Close stops accepting calls, ends subscriptions, waits for in-flight
// calls (up to 5 s), flushes and closes the store. It is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.shutdown)
		done := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.grpc.Stop()
			<-done
		}
		<-s.served
		s.closeErr = s.store.close()
		s.log.Info("event store stopped", "addr", s.Addr())
	})
	return s.closeErr
}

// featuresService implements ServerFeatures.
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
}

// GetSupportedMethods lists the implemented Streams methods.
func (featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const svc = "event_store.client.streams.streams"
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: Version,
		Methods: []*serverfeatures.SupportedMethod{
			{ServiceName: svc, MethodName: "read", Features: []string{"position", "events"}},
			{ServiceName: svc, MethodName: "append"},
			{ServiceName: svc, MethodName: "delete"},
			{ServiceName: svc, MethodName: "tombstone"},
			{ServiceName: "event_store.client.server_features.serverfeatures", MethodName: "getsupportedmethods"},
			{ServiceName: "event_store.client.gossip.gossip", MethodName: "read"},
		},
	}, nil
}
