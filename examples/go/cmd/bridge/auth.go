package main

import (
	"context"
	"errors"
	"os"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The same credentials as the walkthrough in the module root (../../auth.go); a command
// cannot import another main package, so the few lines are repeated here.

var errNoCredentials = errors.New(
	"set STRATOPT_TOKEN, STRATOPT_API_KEY or STRATOPT_USERNAME and STRATOPT_PASSWORD")

// authenticate returns a context whose outgoing metadata carries the credential from the
// environment, first match wins: STRATOPT_TOKEN (a bearer token), STRATOPT_API_KEY
// (x-api-key), or STRATOPT_USERNAME and STRATOPT_PASSWORD exchanged with AuthService.Login.
// A bridge runs for hours: give it an API key rather than a short-lived access token.
func authenticate(ctx context.Context, conn grpc.ClientConnInterface) (context.Context, error) {
	if token := os.Getenv("STRATOPT_TOKEN"); token != "" {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), nil
	}
	if key := os.Getenv("STRATOPT_API_KEY"); key != "" {
		return metadata.AppendToOutgoingContext(ctx, "x-api-key", key), nil
	}
	user, password := os.Getenv("STRATOPT_USERNAME"), os.Getenv("STRATOPT_PASSWORD")
	if user == "" || password == "" {
		return nil, errNoCredentials
	}
	reply, err := stratoptv1.NewAuthServiceClient(conn).Login(ctx, &stratoptv1.LoginRequest{
		Username: user,
		Password: password,
	})
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+reply.GetAccessToken()), nil
}

// hasCredentials reports whether authenticate has something to work with.
func hasCredentials() bool {
	return os.Getenv("STRATOPT_TOKEN") != "" || os.Getenv("STRATOPT_API_KEY") != "" ||
		(os.Getenv("STRATOPT_USERNAME") != "" && os.Getenv("STRATOPT_PASSWORD") != "")
}
