package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// row is one CSV line turned into a bar, with its line number for messages.
type row struct {
	line int
	bar  *stratoptv1.FeedBar
}

// skipped is a CSV line the bridge could not turn into a bar (it never reaches the server).
type skipped struct {
	line   int
	reason string
}

// columns of the CSV, in order.
var columns = []string{"timestamp", "open", "high", "low", "close", "volume"}

// readCSV reads "timestamp,open,high,low,close,volume" rows (a header line is optional)
// into bars of symbol. Lines that do not parse are returned as skipped, with their line
// number and why; everything that parses is returned in file order, even bars the server
// will refuse (NaN prices, high below low, times out of order): the feed validates each
// bar and says why it refused it, which is the point of a bridge reporting them.
//
// Timestamps: RFC 3339 ("2024-05-01T12:00:00Z"), "2006-01-02 15:04:05" (UTC), or integer
// Unix time in seconds, milliseconds, microseconds or nanoseconds (told apart by size).
func readCSV(r io.Reader, symbol string) ([]row, []skipped, error) {
	reader := csv.NewReader(r)
	reader.FieldsPerRecord = -1 // a short line is a skipped row, not a fatal error
	reader.TrimLeadingSpace = true
	reader.Comment = '#'
	var rows []row
	var bad []skipped
	for {
		record, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return rows, bad, nil
		}
		line, _ := reader.FieldPos(0)
		if err != nil {
			var parseErr *csv.ParseError
			if errors.As(err, &parseErr) {
				bad = append(bad, skipped{parseErr.Line, parseErr.Err.Error()})
				continue
			}
			return nil, nil, err
		}
		if len(rows) == 0 && len(bad) == 0 && isHeader(record) {
			continue
		}
		bar, reason := parseRecord(record, symbol)
		if reason != "" {
			bad = append(bad, skipped{line, reason})
			continue
		}
		rows = append(rows, row{line, bar})
	}
}

func isHeader(record []string) bool {
	if len(record) == 0 {
		return false
	}
	first := strings.ToLower(strings.TrimSpace(record[0]))
	return first == "timestamp" || first == "time" || first == "date"
}

func parseRecord(record []string, symbol string) (*stratoptv1.FeedBar, string) {
	if len(record) != len(columns) {
		return nil, fmt.Sprintf("want %d fields (%s), got %d",
			len(columns), strings.Join(columns, ","), len(record))
	}
	ts, err := parseTime(strings.TrimSpace(record[0]))
	if err != nil {
		return nil, fmt.Sprintf("timestamp: %v", err)
	}
	var v [5]float64
	for i := range v {
		v[i], err = strconv.ParseFloat(strings.TrimSpace(record[i+1]), 64)
		if err != nil {
			return nil, fmt.Sprintf("%s: %q is not a number", columns[i+1], record[i+1])
		}
	}
	return &stratoptv1.FeedBar{
		Symbol: symbol,
		Bar: &stratoptv1.Bar{
			Time: timestamppb.New(ts),
			Open: v[0], High: v[1], Low: v[2], Close: v[3], Volume: v[4],
		},
	}, ""
}

func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		abs := n
		if abs < 0 {
			abs = -abs
		}
		switch {
		case abs < 1e11:
			return time.Unix(n, 0).UTC(), nil
		case abs < 1e14:
			return time.UnixMilli(n).UTC(), nil
		case abs < 1e17:
			return time.UnixMicro(n).UTC(), nil
		default:
			return time.Unix(0, n).UTC(), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) {
		return time.Time{}, fmt.Errorf("%q: give whole Unix seconds (or ms/us/ns) or RFC 3339", s)
	}
	return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor Unix time", s)
}
