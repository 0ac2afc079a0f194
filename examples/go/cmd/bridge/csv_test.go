package main

import (
	"strings"
	"testing"
	"time"
)

// These run without a server.

func TestReadCSVParsesBarsAndSkipsLinesThatAreNoBars(t *testing.T) {
	in := strings.Join([]string{
		"timestamp,open,high,low,close,volume",
		"2024-05-01T00:00:00Z,100,101,99,100.5,10",
		"1714521660,100.5,102,100,101,12",         // Unix seconds
		"1714521720000,101,101.5,100.5,101.2,0",   // Unix milliseconds
		"2024-05-01 00:03:00,101.2,NaN,100,101,1", // parses: the server rejects NaN
		"yesterday,1,1,1,1,1",
		"2024-05-01T00:05:00Z,1,2,3",
		"2024-05-01T00:06:00Z,1,2,x,1,1",
	}, "\n")
	rows, bad, err := readCSV(strings.NewReader(in), "BTCUSDT")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("got %d bars, want 4", len(rows))
	}
	wantTimes := []string{"00:00", "00:01", "00:02", "00:03"}
	for i, r := range rows {
		if r.line != i+2 {
			t.Errorf("bar %d: line %d, want %d", i, r.line, i+2)
		}
		if got := r.bar.GetBar().GetTime().AsTime().Format("15:04"); got != wantTimes[i] {
			t.Errorf("bar %d at %s, want %s", i, got, wantTimes[i])
		}
		if r.bar.GetSymbol() != "BTCUSDT" {
			t.Errorf("bar %d symbol %q", i, r.bar.GetSymbol())
		}
	}
	if b := rows[1].bar.GetBar(); b.GetOpen() != 100.5 || b.GetHigh() != 102 || b.GetLow() != 100 ||
		b.GetClose() != 101 || b.GetVolume() != 12 {
		t.Errorf("second bar = %v", b)
	}
	if len(bad) != 3 {
		t.Fatalf("skipped %v, want 3 lines", bad)
	}
	for i, want := range []struct {
		line int
		text string
	}{{6, "timestamp"}, {7, "want 6 fields"}, {8, `low: "x" is not a number`}} {
		if bad[i].line != want.line || !strings.Contains(bad[i].reason, want.text) {
			t.Errorf("skipped[%d] = %+v, want line %d with %q", i, bad[i], want.line, want.text)
		}
	}
}

func TestParseTimeTellsUnixUnitsApart(t *testing.T) {
	want := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"1714564800", "1714564800000", "1714564800000000", "1714564800000000000",
		"2024-05-01T12:00:00Z", "2024-05-01T14:00:00+02:00", "2024-05-01 12:00:00",
	} {
		got, err := parseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := parseTime("1714564800.5"); err == nil {
		t.Error("fractional Unix seconds were accepted")
	}
}

func TestFlagsRequireCSVAndSymbol(t *testing.T) {
	if _, err := parseFlags([]string{"-csv", "x.csv"}); err == nil {
		t.Error("no -symbol accepted")
	}
	cfg, err := parseFlags([]string{"-csv", "x.csv", "-symbol", "btcusdt", "-batch", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.feed.Symbol != "BTCUSDT" || cfg.feed.Name != "BTCUSDT bridge" || cfg.push.Batch != 7 {
		t.Errorf("config = %+v", cfg)
	}
}
