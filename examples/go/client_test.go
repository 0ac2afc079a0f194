package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// These tests talk to a running server; they skip unless STRATOPT_SERVER and a credential
// (see authenticate) are set. tests/client/test_go_client.py runs them against a live one.

type fixture struct {
	ctx    context.Context
	client stratoptv1.StrategyServiceClient
}

func setup(t *testing.T) fixture {
	t.Helper()
	if os.Getenv("STRATOPT_SERVER") == "" || !hasCredentials() {
		t.Skip("set STRATOPT_SERVER and STRATOPT_TOKEN (or another credential) to run against a server")
	}
	conn, err := dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	cred, err := sharedCredential(ctx, conn)
	if err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	return fixture{ctx: cred.attach(ctx), client: stratoptv1.NewStrategyServiceClient(conn)}
}

// The suite logs in once (with STRATOPT_USERNAME/PASSWORD) and every test reuses the token:
// a login per test would hit the server's login rate limit.
var (
	credentialOnce sync.Once
	sharedCred     header
	sharedCredErr  error
)

func sharedCredential(ctx context.Context, conn grpc.ClientConnInterface) (header, error) {
	credentialOnce.Do(func() { sharedCred, sharedCredErr = credential(ctx, conn) })
	return sharedCred, sharedCredErr
}

// create makes a strategy that is deleted when the test ends (if the test did not delete it).
func (f fixture) create(t *testing.T, s *stratoptv1.Strategy) *stratoptv1.Strategy {
	t.Helper()
	reply, err := f.client.CreateStrategy(f.ctx, &stratoptv1.CreateStrategyRequest{Strategy: s})
	if err != nil {
		t.Fatalf("CreateStrategy(%q): %v", s.GetName(), err)
	}
	id := reply.GetStrategy().GetId()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(f.ctx), 5*time.Second)
		defer cancel()
		_, err := f.client.DeleteStrategy(ctx, &stratoptv1.DeleteStrategyRequest{StrategyId: id})
		if err != nil && status.Code(err) != codes.NotFound {
			t.Errorf("cleanup: DeleteStrategy(%s): %v", id, err)
		}
	})
	return reply.GetStrategy()
}

func TestListStrategyTypesDescribesSMACrossover(t *testing.T) {
	f := setup(t)
	reply, err := f.client.ListStrategyTypes(f.ctx, &stratoptv1.ListStrategyTypesRequest{})
	if err != nil {
		t.Fatalf("ListStrategyTypes: %v", err)
	}
	i := slices.IndexFunc(reply.GetStrategyTypes(), func(st *stratoptv1.StrategyType) bool {
		return st.GetName() == "sma_crossover"
	})
	if i < 0 {
		t.Fatalf("sma_crossover missing from %d types", len(reply.GetStrategyTypes()))
	}
	var names []string
	for _, p := range reply.GetStrategyTypes()[i].GetParameters() {
		names = append(names, p.GetName())
	}
	if !slices.Equal(names, []string{"fast", "slow"}) {
		t.Errorf("sma_crossover parameters = %v, want [fast slow]", names)
	}
}

func TestStrategyLifecycle(t *testing.T) {
	f := setup(t)
	name := uniqueName("go-test")
	created := f.create(t, smaCrossover(name, 10, 50))
	if created.GetId() == "" || created.GetName() != name || created.GetVersion() != 1 {
		t.Fatalf("created = id %q name %q version %d", created.GetId(), created.GetName(), created.GetVersion())
	}

	got, err := f.client.GetStrategy(f.ctx, &stratoptv1.GetStrategyRequest{StrategyId: created.GetId()})
	if err != nil {
		t.Fatalf("GetStrategy: %v", err)
	}
	params := got.GetStrategy().GetParameters()
	if params["fast"].GetIntValue() != 10 || params["slow"].GetIntValue() != 50 {
		t.Errorf("parameters = %v, want fast=10 slow=50", params)
	}
	if got.GetStrategy().GetStrategyType() != "sma_crossover" {
		t.Errorf("strategy_type = %q", got.GetStrategy().GetStrategyType())
	}

	// Only the masked field changes, even though the request leaves name and parameters empty.
	updated, err := f.client.UpdateStrategy(f.ctx, &stratoptv1.UpdateStrategyRequest{
		Strategy:   &stratoptv1.Strategy{Id: created.GetId(), Description: "updated by go test"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	})
	if err != nil {
		t.Fatalf("UpdateStrategy: %v", err)
	}
	u := updated.GetStrategy()
	if u.GetDescription() != "updated by go test" {
		t.Errorf("description = %q", u.GetDescription())
	}
	if u.GetName() != name || u.GetParameters()["slow"].GetIntValue() != 50 {
		t.Errorf("fields outside the mask changed: name %q parameters %v", u.GetName(), u.GetParameters())
	}
	if u.GetVersion() != created.GetVersion()+1 {
		t.Errorf("version = %d, want %d", u.GetVersion(), created.GetVersion()+1)
	}

	if _, err := f.client.DeleteStrategy(f.ctx, &stratoptv1.DeleteStrategyRequest{StrategyId: created.GetId()}); err != nil {
		t.Fatalf("DeleteStrategy: %v", err)
	}
	_, err = f.client.GetStrategy(f.ctx, &stratoptv1.GetStrategyRequest{StrategyId: created.GetId()})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetStrategy after delete: got %v, want NotFound", err)
	}
}

func TestInvalidCreateReportsEveryFieldViolation(t *testing.T) {
	f := setup(t)
	_, err := f.client.CreateStrategy(f.ctx, &stratoptv1.CreateStrategyRequest{
		Strategy: smaCrossover("", 60, 20),
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	var fields []string
	for _, v := range fieldViolations(err) {
		if v.GetDescription() == "" {
			t.Errorf("violation of %s has no description", v.GetField())
		}
		fields = append(fields, v.GetField())
	}
	if !slices.Contains(fields, "strategy.name") {
		t.Errorf("violations %v lack strategy.name", fields)
	}
	if !slices.ContainsFunc(fields, func(f string) bool { return strings.HasPrefix(f, "strategy.parameters.") }) {
		t.Errorf("violations %v lack the fast < slow parameter constraint", fields)
	}
}

func TestListStrategiesPagesThroughEveryMatch(t *testing.T) {
	f := setup(t)
	tag := strings.ToLower(uniqueName("go-page"))
	want := map[string]bool{}
	for i := range 3 {
		s := smaCrossover(uniqueName("go-page"), int64(5+i), 50)
		s.Tags = []string{tag}
		want[f.create(t, s).GetId()] = true
	}

	filter := &stratoptv1.ListStrategiesRequest{PageSize: 2, Tags: []string{tag}}
	first, err := f.client.ListStrategies(f.ctx, filter)
	if err != nil {
		t.Fatalf("ListStrategies: %v", err)
	}
	if len(first.GetStrategies()) != 2 || first.GetNextPageToken() == "" || first.GetTotalSize() != 3 {
		t.Fatalf("first page: %d strategies, next_page_token %q, total_size %d; want 2, a token, 3",
			len(first.GetStrategies()), first.GetNextPageToken(), first.GetTotalSize())
	}

	all, err := listAll(f.ctx, f.client, filter)
	if err != nil {
		t.Fatalf("listAll: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.GetId()] {
			t.Errorf("strategy %s listed twice", s.GetId())
		}
		seen[s.GetId()] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("listed %d strategies, want %d", len(seen), len(want))
	}
	for id := range want {
		if !seen[id] {
			t.Errorf("strategy %s missing from the pages", id)
		}
	}
}

func TestCallsWithoutCredentialsAreUnauthenticated(t *testing.T) {
	setup(t)
	conn, err := dial()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = stratoptv1.NewStrategyServiceClient(conn).ListStrategyTypes(ctx, &stratoptv1.ListStrategyTypesRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want Unauthenticated", err)
	}
}
