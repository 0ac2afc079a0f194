// Command example walks through stratopt's strategy API over gRPC: it lists the strategy
// types, shows the field errors of an invalid create, creates a strategy, pages through the
// list, reads it back, updates one field with a field mask, deletes it and shows that it is
// gone.
//
//	STRATOPT_SERVER=127.0.0.1:50051 STRATOPT_TOKEN=... go run .
//
// See authenticate for the credentials it accepts.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"os"
	"time"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

const defaultServer = "127.0.0.1:50051"

func main() {
	log.SetFlags(0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx); err != nil {
		log.Fatalf("error: %v", err)
	}
}

// serverAddr is STRATOPT_SERVER, or the address `stratopt serve` listens on by default.
func serverAddr() string {
	if addr := os.Getenv("STRATOPT_SERVER"); addr != "" {
		return addr
	}
	return defaultServer
}

// dial opens a plaintext HTTP/2 connection; use credentials.NewTLS behind a TLS endpoint.
func dial() (*grpc.ClientConn, error) {
	return grpc.NewClient(serverAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func run(ctx context.Context) error {
	conn, err := dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, err = authenticate(ctx, conn)
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	client := stratoptv1.NewStrategyServiceClient(conn)

	if err := printStrategyTypes(ctx, client); err != nil {
		return err
	}
	if err := showInvalidCreate(ctx, client); err != nil {
		return err
	}

	created, err := client.CreateStrategy(ctx, &stratoptv1.CreateStrategyRequest{
		Strategy: smaCrossover(uniqueName("go-example"), 10, 50),
	})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	id := created.GetStrategy().GetId()
	fmt.Printf("created %s id=%s version=%d\n", created.GetStrategy().GetName(), id, created.GetStrategy().GetVersion())

	all, err := listAll(ctx, client, &stratoptv1.ListStrategiesRequest{PageSize: 5})
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	fmt.Printf("listed %d strategies\n", len(all))

	got, err := client.GetStrategy(ctx, &stratoptv1.GetStrategyRequest{StrategyId: id})
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	params := got.GetStrategy().GetParameters()
	fmt.Printf("read back %s: fast=%d slow=%d\n", got.GetStrategy().GetName(),
		params["fast"].GetIntValue(), params["slow"].GetIntValue())

	updated, err := client.UpdateStrategy(ctx, &stratoptv1.UpdateStrategyRequest{
		Strategy:   &stratoptv1.Strategy{Id: id, Description: "tuned for hourly bars"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
	})
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	fmt.Printf("updated description=%q version=%d\n",
		updated.GetStrategy().GetDescription(), updated.GetStrategy().GetVersion())

	if _, err := client.DeleteStrategy(ctx, &stratoptv1.DeleteStrategyRequest{StrategyId: id}); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	fmt.Printf("deleted %s\n", id)

	_, err = client.GetStrategy(ctx, &stratoptv1.GetStrategyRequest{StrategyId: id})
	if status.Code(err) != codes.NotFound {
		return fmt.Errorf("get after delete: want NotFound, got %v", err)
	}
	fmt.Printf("get after delete -> %s: %s\n", status.Code(err), status.Convert(err).Message())
	return nil
}

func printStrategyTypes(ctx context.Context, client stratoptv1.StrategyServiceClient) error {
	types, err := client.ListStrategyTypes(ctx, &stratoptv1.ListStrategyTypesRequest{})
	if err != nil {
		return fmt.Errorf("list strategy types: %w", err)
	}
	fmt.Printf("%d strategy types:\n", len(types.GetStrategyTypes()))
	for _, t := range types.GetStrategyTypes() {
		fmt.Printf("  %-24s %s\n", t.GetName(), t.GetDisplayName())
	}
	return nil
}

// showInvalidCreate sends a strategy with no name and fast above slow: the server rejects
// it with INVALID_ARGUMENT and one field violation per problem.
func showInvalidCreate(ctx context.Context, client stratoptv1.StrategyServiceClient) error {
	_, err := client.CreateStrategy(ctx, &stratoptv1.CreateStrategyRequest{
		Strategy: smaCrossover("", 60, 20),
	})
	if status.Code(err) != codes.InvalidArgument {
		return fmt.Errorf("invalid create: want InvalidArgument, got %v", err)
	}
	fmt.Printf("invalid create -> %s\n", status.Code(err))
	for _, v := range fieldViolations(err) {
		fmt.Printf("  %s: %s\n", v.GetField(), v.GetDescription())
	}
	return nil
}

// uniqueName makes names that do not collide with earlier runs (names are unique per owner).
func uniqueName(prefix string) string {
	return prefix + "-" + rand.Text()[:10]
}
