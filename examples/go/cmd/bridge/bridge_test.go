package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// These talk to a running server and skip unless STRATOPT_SERVER and a credential are set;
// tests/client/test_go_bridge.py runs them against a live one.

type fixture struct {
	ctx    context.Context
	client stratoptv1.MarketDataServiceClient
}

func setup(t *testing.T) fixture {
	t.Helper()
	if os.Getenv("STRATOPT_SERVER") == "" || !hasCredentials() {
		t.Skip("set STRATOPT_SERVER and STRATOPT_TOKEN (or another credential) to run against a server")
	}
	conn, err := grpc.NewClient(serverAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ctx, err = authenticate(ctx, conn)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return fixture{ctx: ctx, client: stratoptv1.NewMarketDataServiceClient(conn)}
}

// feed creates a push feed for a symbol of its own, deleted when the test ends.
func (f fixture) feed(t *testing.T) *stratoptv1.Feed {
	t.Helper()
	symbol := "GO" + strings.ToUpper(rand.Text()[:8])
	feed, created, err := ensureFeed(f.ctx, f.client, feedSpec{Symbol: symbol, Timeframe: "1m", Name: t.Name()})
	if err != nil || !created {
		t.Fatalf("ensureFeed: created=%v err=%v", created, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 5*time.Second)
		defer cancel()
		_, err := f.client.DeleteFeed(ctx, &stratoptv1.DeleteFeedRequest{FeedId: feed.GetId()})
		if err != nil && status.Code(err) != codes.NotFound {
			t.Errorf("cleanup: DeleteFeed(%s): %v", feed.GetId(), err)
		}
	})
	return feed
}

// minuteBars is n good one-minute bars from 2024-05-01, one CSV line each.
func minuteBars(n int) []string {
	start := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	var lines []string
	for i := range n {
		p := 100 + float64(i%7)
		lines = append(lines, fmt.Sprintf("%s,%g,%g,%g,%g,%d",
			start.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), p, p+1, p-1, p+0.5, 10+i))
	}
	return lines
}

func TestPushReportsEachBadBarAndKeepsTheRest(t *testing.T) {
	f := setup(t)
	feed := f.feed(t)
	lines := minuteBars(10)
	// Three bars the feed must refuse, each for its own reason, between good ones.
	lines = append(lines[:4], append([]string{
		"2024-05-01T00:01:30Z,100,101,99,100,1", // before the bar above it
		"2024-05-01T00:04:00Z,100,NaN,99,100,1", // NaN
		"2024-05-01T00:04:30Z,100,98,101,100,1", // high below low
	}, lines[4:]...)...)
	rows, bad, err := readCSV(strings.NewReader(strings.Join(lines, "\n")), feed.GetSymbols()[0])
	if err != nil || len(bad) != 0 || len(rows) != 13 {
		t.Fatalf("readCSV: %d rows, skipped %v, %v", len(rows), bad, err)
	}
	reply, messages, err := push(f.ctx, f.client, feed.GetId(), rows, pushOptions{Batch: 4})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if messages != 4 || reply.GetAccepted() != 10 || reply.GetRejected() != 3 {
		t.Fatalf("%d messages, accepted %d rejected %d; want 4, 10, 3", messages, reply.GetAccepted(), reply.GetRejected())
	}
	want := []struct {
		index int64
		text  string
	}{{4, "strictly increasing"}, {5, "high is NaN"}, {6, "below low"}}
	for i, r := range reply.GetRejections() {
		if r.GetIndex() != want[i].index || !strings.Contains(r.GetReason(), want[i].text) {
			t.Errorf("rejection %d = index %d %q; want index %d with %q", i, r.GetIndex(), r.GetReason(), want[i].index, want[i].text)
		}
		if r.GetSymbol() != feed.GetSymbols()[0] || r.GetTime() == nil {
			t.Errorf("rejection %d lacks its bar: %v", i, r)
		}
	}
	got, err := f.client.GetFeed(f.ctx, &stratoptv1.GetFeedRequest{FeedId: feed.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetFeed().GetBarsAccepted() != 10 || got.GetFeed().GetBarsRejected() != 3 {
		t.Errorf("feed counts %d accepted, %d rejected; want 10, 3",
			got.GetFeed().GetBarsAccepted(), got.GetFeed().GetBarsRejected())
	}
	// A second upload resumes after the last accepted bar: a repeat of it is refused.
	again, _, err := push(f.ctx, f.client, feed.GetId(), rows[len(rows)-1:], pushOptions{Batch: 1})
	if err != nil || again.GetAccepted() != 0 || again.GetRejected() != 1 {
		t.Errorf("repeated last bar: %v, %v", again, err)
	}
}

func TestRunReusesAFeedAndTracesRejectionsToCSVLines(t *testing.T) {
	f := setup(t)
	feed := f.feed(t)
	lines := append([]string{"timestamp,open,high,low,close,volume"}, minuteBars(5)...)
	lines = append(lines, "2024-05-01T00:02:00Z,100,101,99,100,1", "not-a-time,1,2,0.5,1,1")
	path := filepath.Join(t.TempDir(), "bars.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg := config{csvPath: path, feed: feedSpec{ID: feed.GetId(), Symbol: feed.GetSymbols()[0]}, push: pushOptions{Batch: 2}}
	if err := run(f.ctx, cfg, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{
		"6 bars, 1 lines skipped",
		"line 8 skipped: timestamp",
		"using push feed " + feed.GetId(),
		"pushed 6 bars in 3 messages: accepted 5, rejected 1",
		"line 7 rejected: " + feed.GetSymbols()[0] + " 2024-05-01T00:02:00Z: timestamp",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func TestReuseChecksKindAndSymbol(t *testing.T) {
	f := setup(t)
	feed := f.feed(t)
	_, _, err := ensureFeed(f.ctx, f.client, feedSpec{ID: feed.GetId(), Symbol: "NOTTHERE"})
	if err == nil || !strings.Contains(err.Error(), "carries") {
		t.Errorf("wrong symbol: %v", err)
	}
	_, _, err = ensureFeed(f.ctx, f.client, feedSpec{ID: "no-such-feed", Symbol: "X"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("unknown feed: %v, want NotFound", err)
	}
}
