// Command go_load drives unary calls at a fixed concurrency for bench/load.py: a client cheap
// enough per call that the figures measure the server (a Python asyncio client saturates at
// about 1,000-2,000 calls/s on its own).
//
//	go_load -addr 127.0.0.1:50051 -token ... -method get_strategy -id ID -c 64 -conns 8 -seconds 5
//
// -method is get_strategy (GetStrategy, authenticated) or list_types (ListStrategyTypes).
// Workers share -conns HTTP/2 connections round-robin. After -warmup seconds of unmeasured
// calls it measures for -seconds and prints one JSON object: calls, errors, seconds,
// throughput and latency percentiles in milliseconds, and the first error seen.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

type result struct {
	Calls      int     `json:"calls"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	FirstError string  `json:"first_error"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "server address")
	token := flag.String("token", "", "access token (Bearer)")
	method := flag.String("method", "get_strategy", "get_strategy or list_types")
	id := flag.String("id", "", "strategy id for get_strategy")
	concurrency := flag.Int("c", 16, "concurrent callers")
	conns := flag.Int("conns", 4, "HTTP/2 connections")
	seconds := flag.Float64("seconds", 5, "measured seconds")
	warmup := flag.Float64("warmup", 1, "unmeasured seconds first")
	flag.Parse()

	clients := make([]stratoptv1.StrategyServiceClient, *conns)
	for i := range clients {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			log.Fatal(err)
		}
		defer cc.Close()
		clients[i] = stratoptv1.NewStrategyServiceClient(cc)
	}
	ctx := context.Background()
	if *token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	}
	call := func(c stratoptv1.StrategyServiceClient) error {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		if *method == "list_types" {
			_, err = c.ListStrategyTypes(cctx, &stratoptv1.ListStrategyTypesRequest{})
		} else {
			_, err = c.GetStrategy(cctx, &stratoptv1.GetStrategyRequest{StrategyId: *id})
		}
		return err
	}

	start := time.Now()
	measureFrom := start.Add(time.Duration(*warmup * float64(time.Second)))
	end := measureFrom.Add(time.Duration(*seconds * float64(time.Second)))
	var errors int64
	var firstError atomic.Value
	latencies := make([][]time.Duration, *concurrency)
	var wg sync.WaitGroup
	for w := 0; w < *concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := clients[w%len(clients)]
			for {
				t0 := time.Now()
				if t0.After(end) {
					return
				}
				err := call(c)
				if t0.Before(measureFrom) {
					continue
				}
				latencies[w] = append(latencies[w], time.Since(t0))
				if err != nil {
					atomic.AddInt64(&errors, 1)
					firstError.CompareAndSwap(nil, err.Error())
				}
			}
		}(w)
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	elapsed := time.Since(measureFrom).Seconds()
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	r := result{
		Calls:      len(all),
		Errors:     errors,
		Seconds:    elapsed,
		Throughput: float64(len(all)) / elapsed,
		P50:        pct(0.50),
		P99:        pct(0.99),
		Max:        pct(1.0),
	}
	if v := firstError.Load(); v != nil {
		r.FirstError = fmt.Sprint(v)
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		log.Fatal(err)
	}
}
