package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
)

// maxBatch is the server's limit of bars per PushBarsRequest.
const maxBatch = 10_000

// feedSpec says which push feed to use: an existing one (ID), or a new one.
type feedSpec struct {
	ID        string // reuse this feed; empty = create one
	Symbol    string
	Timeframe string // of a created feed, e.g. "1m" (a silent feed then raises an alert)
	Name      string // display name of a created feed
}

// ensureFeed returns the push feed to write to: the one named by spec.ID after checking
// that it is a push feed carrying spec.Symbol, or a new push feed for spec.Symbol.
func ensureFeed(
	ctx context.Context, client stratoptv1.MarketDataServiceClient, spec feedSpec,
) (feed *stratoptv1.Feed, created bool, err error) {
	if spec.ID != "" {
		reply, err := client.GetFeed(ctx, &stratoptv1.GetFeedRequest{FeedId: spec.ID})
		if err != nil {
			return nil, false, fmt.Errorf("get feed %s: %w", spec.ID, err)
		}
		feed = reply.GetFeed()
		if feed.GetKind() != stratoptv1.FeedKind_FEED_KIND_PUSH {
			return nil, false, fmt.Errorf("feed %s is a %s feed; bars can only be pushed to a push feed",
				feed.GetId(), feed.GetKind())
		}
		if !slices.Contains(feed.GetSymbols(), spec.Symbol) {
			return nil, false, fmt.Errorf("feed %s carries %v, not %s", feed.GetId(), feed.GetSymbols(), spec.Symbol)
		}
		return feed, false, nil
	}
	reply, err := client.CreateFeed(ctx, &stratoptv1.CreateFeedRequest{Feed: &stratoptv1.Feed{
		Kind:        stratoptv1.FeedKind_FEED_KIND_PUSH,
		DisplayName: spec.Name,
		Symbols:     []string{spec.Symbol},
		Timeframe:   spec.Timeframe,
	}})
	if err != nil {
		return nil, false, fmt.Errorf("create feed: %w", err)
	}
	return reply.GetFeed(), true, nil
}

// pushOptions shape an upload: bars per message, and a pause between messages (a bridge
// relaying a live exchange sends each bar as it closes; a backfill sends as fast as it can).
type pushOptions struct {
	Batch int
	Pause time.Duration
}

// push sends rows to the feed over one client-streaming PushBars call, in batches, and
// returns the server's verdict: how many bars it accepted and, for the first 100 it
// rejected, their index in the upload (the position in rows) and the reason. The call
// returns once every accepted bar is stored and the strategies on the feed have traded it.
func push(
	ctx context.Context, client stratoptv1.MarketDataServiceClient, feedID string, rows []row,
	opts pushOptions,
) (*stratoptv1.PushBarsResponse, int, error) {
	if opts.Batch < 1 || opts.Batch > maxBatch {
		return nil, 0, fmt.Errorf("batch must be 1..%d bars, got %d", maxBatch, opts.Batch)
	}
	stream, err := client.PushBars(ctx)
	if err != nil {
		return nil, 0, err
	}
	messages := 0
	for start := 0; start < len(rows) || messages == 0; start += opts.Batch {
		end := min(start+opts.Batch, len(rows))
		req := &stratoptv1.PushBarsRequest{}
		if messages == 0 {
			req.FeedId = feedID // required in the first message only
		}
		for _, r := range rows[start:end] {
			req.Bars = append(req.Bars, r.bar)
		}
		if messages > 0 && opts.Pause > 0 {
			select {
			case <-ctx.Done():
				return nil, messages, ctx.Err()
			case <-time.After(opts.Pause):
			}
		}
		if err := stream.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				break // the server ended the call; CloseAndRecv returns its status
			}
			return nil, messages, err
		}
		messages++
	}
	reply, err := stream.CloseAndRecv()
	return reply, messages, err
}
