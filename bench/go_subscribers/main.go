// Command go_subscribers opens many StreamSignals subscriptions to one strategy and records
// when each signal arrived, for bench/bench_live.py: a client cheap enough per message that
// the figures measure the server's fan-out rather than a Python client's own queue.
//
//	go_subscribers -addr 127.0.0.1:50051 -token ... -strategy ID -n 1000 -conns 1000 -seconds 20
//
// It prints "ready" on stderr once every stream is open, then, after -seconds, one line per
// received signal on stdout: "<bar time ns> <receipt CLOCK_MONOTONIC ns>". CLOCK_MONOTONIC
// is the clock Python's time.monotonic() reads, so the bench subtracts the server's bar
// arrival times directly.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

type sample struct{ bar, got int64 }

func monotonic() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server")
	token := flag.String("token", "", "bearer token")
	strategy := flag.String("strategy", "", "strategy id")
	n := flag.Int("n", 1000, "subscribers")
	conns := flag.Int("conns", 1000, "HTTP/2 connections shared by the subscribers")
	seconds := flag.Float64("seconds", 20, "how long to record after all are open")
	flag.Parse()
	log.SetFlags(0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	clients := make([]stratoptv1.StrategyServiceClient, *conns)
	for i := range clients {
		conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		defer conn.Close()
		clients[i] = stratoptv1.NewStrategyServiceClient(conn)
	}
	samples := make([][]sample, *n)
	var ready, done sync.WaitGroup
	open := make(chan struct{})
	errs := make(chan error, *n)
	for i := 0; i < *n; i++ {
		ready.Add(1)
		done.Add(1)
		go func(i int) {
			defer done.Done()
			stream, err := clients[i%*conns].StreamSignals(ctx, &stratoptv1.StreamSignalsRequest{StrategyId: *strategy})
			if err == nil {
				_, err = stream.Header()
			}
			ready.Done()
			if err != nil {
				errs <- err
				return
			}
			<-open
			for {
				resp, err := stream.Recv()
				if err != nil {
					return
				}
				samples[i] = append(samples[i], sample{resp.GetSignal().GetTime().AsTime().UnixNano(), monotonic()})
			}
		}(i)
	}
	ready.Wait()
	select {
	case err := <-errs:
		log.Fatalf("a subscription failed: %v", err)
	default:
	}
	close(open)
	fmt.Fprintln(os.Stderr, "ready")
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	cancel()
	done.Wait()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, list := range samples {
		for _, s := range list {
			fmt.Fprintf(out, "%d %d\n", s.bar, s.got)
		}
	}
}
