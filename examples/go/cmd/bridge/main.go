// Command bridge pushes bars from a CSV file into a stratopt push feed, as an exchange
// bridge does: it logs in, creates a push feed (or reuses one), and streams the bars over
// the client-streaming MarketDataService.PushBars call in batches. Then it prints how many
// bars the feed accepted and why it rejected the others (out-of-order times, NaN prices,
// high below low, ...): a bad bar is refused on its own, the rest go through.
//
//	STRATOPT_SERVER=127.0.0.1:50051 STRATOPT_TOKEN=... \
//	  go run ./cmd/bridge -csv bars.csv -symbol BTCUSDT [-feed ID] [-timeframe 1m] [-batch 500] [-pause 0]
//
// The CSV holds timestamp,open,high,low,close,volume (header optional; see readCSV for the
// time formats). Strategies started on the feed (StartStrategy with feed_id) trade the bars
// as they arrive; the call returns once they have.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const defaultServer = "127.0.0.1:50051"

type config struct {
	csvPath string
	feed    feedSpec
	push    pushOptions
	timeout time.Duration
}

func main() {
	log.SetFlags(0)
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		log.Fatalf("error: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatalf("error: %v", err)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.csvPath, "csv", "", "CSV file of timestamp,open,high,low,close,volume (- for stdin)")
	fs.StringVar(&cfg.feed.Symbol, "symbol", "", "symbol of the bars, e.g. BTCUSDT")
	fs.StringVar(&cfg.feed.ID, "feed", "", "push to this feed (default: create a push feed)")
	fs.StringVar(&cfg.feed.Timeframe, "timeframe", "", "bar spacing of a created feed, e.g. 1m")
	fs.StringVar(&cfg.feed.Name, "name", "", "display name of a created feed (default: <symbol> bridge)")
	fs.IntVar(&cfg.push.Batch, "batch", 500, fmt.Sprintf("bars per message, 1..%d", maxBatch))
	fs.DurationVar(&cfg.push.Pause, "pause", 0, "wait between messages (0 = as fast as possible)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.feed.Symbol = strings.ToUpper(strings.TrimSpace(cfg.feed.Symbol))
	if cfg.csvPath == "" || cfg.feed.Symbol == "" {
		return cfg, fmt.Errorf("-csv and -symbol are required")
	}
	if cfg.feed.Name == "" {
		cfg.feed.Name = cfg.feed.Symbol + " bridge"
	}
	return cfg, nil
}

func serverAddr() string {
	if addr := os.Getenv("STRATOPT_SERVER"); addr != "" {
		return addr
	}
	return defaultServer
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	rows, bad, err := readFile(cfg.csvPath, cfg.feed.Symbol)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "read %s: %d bars, %d lines skipped\n", cfg.csvPath, len(rows), len(bad))
	for _, s := range bad {
		fmt.Fprintf(out, "  line %d skipped: %s\n", s.line, s.reason)
	}

	conn, err := grpc.NewClient(serverAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, err = authenticate(ctx, conn)
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	client := stratoptv1.NewMarketDataServiceClient(conn)

	feed, created, err := ensureFeed(ctx, client, cfg.feed)
	if err != nil {
		return err
	}
	verb := "using"
	if created {
		verb = "created"
	}
	fmt.Fprintf(out, "%s push feed %s (%s, symbols %s)\n",
		verb, feed.GetId(), feed.GetDisplayName(), strings.Join(feed.GetSymbols(), ","))

	reply, messages, err := push(ctx, client, feed.GetId(), rows, cfg.push)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	report(out, reply, rows, messages)
	return nil
}

func readFile(path, symbol string) ([]row, []skipped, error) {
	if path == "-" {
		return readCSV(os.Stdin, symbol)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readCSV(f, symbol)
}

// report prints the verdict; each rejection is traced back to its CSV line.
func report(out io.Writer, reply *stratoptv1.PushBarsResponse, rows []row, messages int) {
	fmt.Fprintf(out, "pushed %d bars in %d messages: accepted %d, rejected %d\n",
		len(rows), messages, reply.GetAccepted(), reply.GetRejected())
	for _, r := range reply.GetRejections() {
		line := "?"
		if i := r.GetIndex(); i >= 0 && i < int64(len(rows)) {
			line = fmt.Sprint(rows[i].line)
		}
		when := "no time"
		if r.GetTime() != nil {
			when = r.GetTime().AsTime().Format(time.RFC3339Nano)
		}
		fmt.Fprintf(out, "  line %s rejected: %s %s: %s\n", line, r.GetSymbol(), when, r.GetReason())
	}
	if shown := int64(len(reply.GetRejections())); reply.GetRejected() > shown {
		fmt.Fprintf(out, "  ... and %d more (the server lists the first %d)\n", reply.GetRejected()-shown, shown)
	}
}
