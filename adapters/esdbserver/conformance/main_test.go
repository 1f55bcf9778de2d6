package conformance

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/larkhq/lark/adapters/esdbserver"
)

// childDirEnv, when set, turns the test binary into a bare server process
// serving that data directory (the crash test re-executes itself this way so
// that it can kill -9 the server without killing the tests).
const childDirEnv = "LARK_CONFORMANCE_SERVER_DIR"

// listeningPrefix starts the line on which a child announces its URL.
const listeningPrefix = "LISTENING "

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(serveChild(dir))
	}
	os.Exit(m.Run())
}

// serveChild runs the embedded server on dir until SIGTERM/SIGINT (or until
// it is killed, which is the point).
func serveChild(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv, err := esdbserver.Start(ctx, esdbserver.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start embedded event store on %s: %v\n", dir, err)
		return 1
	}
	fmt.Printf("%s%s\n", listeningPrefix, srv.URL())
	<-ctx.Done()
	if err := srv.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "close: %v\n", err)
		return 1
	}
	return 0
}
