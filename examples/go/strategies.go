package main

import (
	"context"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/protobuf/proto"
)

// smaCrossover builds a simple moving-average crossover strategy.
func smaCrossover(name string, fast, slow int64) *stratoptv1.Strategy {
	return &stratoptv1.Strategy{
		Name:         name,
		Description:  "created by the Go example",
		StrategyType: "sma_crossover",
		Parameters: map[string]*stratoptv1.ParameterValue{
			"fast": intParam(fast),
			"slow": intParam(slow),
		},
		Symbols:   []string{"BTCUSDT"},
		Timeframe: "1h",
		Tags:      []string{"example"},
	}
}

func intParam(v int64) *stratoptv1.ParameterValue {
	return &stratoptv1.ParameterValue{Kind: &stratoptv1.ParameterValue_IntValue{IntValue: v}}
}

// listAll follows next_page_token until the last page; filter is the first page's request.
func listAll(
	ctx context.Context, client stratoptv1.StrategyServiceClient, filter *stratoptv1.ListStrategiesRequest,
) ([]*stratoptv1.Strategy, error) {
	req := proto.CloneOf(filter)
	var all []*stratoptv1.Strategy
	for {
		page, err := client.ListStrategies(ctx, req)
		if err != nil {
			return nil, err
		}
		all = append(all, page.GetStrategies()...)
		if page.GetNextPageToken() == "" {
			return all, nil
		}
		req.PageToken = page.GetNextPageToken()
	}
}
