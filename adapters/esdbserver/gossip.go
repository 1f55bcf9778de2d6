package esdbserver

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/google/uuid"
	"google.golang.org/grpc/peer"
)

// gossipService answers Gossip.Read with this single node as the alive
// leader, so that esdb+discover:// connection strings work too.
type gossipService struct {
	gossip.UnimplementedGossipServer
	id   uuid.UUID
	addr string // host:port the clients reach this node at
}

// Read describes the one-node cluster.
func (g gossipService) Read(ctx context.Context, _ *shared.Empty) (*gossip.ClusterInfo, error) {
	addr := g.addr
	// The address the caller reached us at is the one it can dial again
	// (the bound address may be a wildcard).
	if p, ok := peer.FromContext(ctx); ok && p.LocalAddr != nil {
		addr = p.LocalAddr.String()
	}
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.ParseUint(portStr, 10, 32)
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId: &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
			MostSignificantBits:  int64(binary.BigEndian.Uint64(g.id[:8])),
			LeastSignificantBits: int64(binary.BigEndian.Uint64(g.id[8:])),
		}}},
		TimeStamp:    toTicks(time.Now()),
		State:        gossip.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(port)},
	}}}, nil
}
