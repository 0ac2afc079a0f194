package main

import (
	"context"
	"errors"
	"os"

	stratoptv1 "github.com/stratopt/stratopt/generated/go/stratopt/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// errNoCredentials tells the user which environment variables authenticate them.
var errNoCredentials = errors.New(
	"set STRATOPT_TOKEN, STRATOPT_API_KEY or STRATOPT_USERNAME and STRATOPT_PASSWORD")

// authenticate returns a context whose outgoing metadata carries the caller's credential,
// so every RPC made with it (or a context derived from it) is authenticated.
//
// The credential comes from the environment, first match wins:
// STRATOPT_TOKEN (sent as "authorization: Bearer ..."), STRATOPT_API_KEY (sent as
// "x-api-key"), or STRATOPT_USERNAME and STRATOPT_PASSWORD exchanged for a token with
// AuthService.Login.
func authenticate(ctx context.Context, conn grpc.ClientConnInterface) (context.Context, error) {
	cred, err := credential(ctx, conn)
	if err != nil {
		return nil, err
	}
	return cred.attach(ctx), nil
}

// header is one request header that authenticates the caller.
type header struct{ name, value string }

// attach returns a context whose outgoing calls carry the header.
func (h header) attach(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, h.name, h.value)
}

// credential finds the caller's credential (see authenticate). A program that makes many
// calls gets it once and attaches it to every context: logging in again for each call (or
// each test) wastes a password hash on the server and runs into its login rate limit.
func credential(ctx context.Context, conn grpc.ClientConnInterface) (header, error) {
	if token := os.Getenv("STRATOPT_TOKEN"); token != "" {
		return bearer(token), nil
	}
	if key := os.Getenv("STRATOPT_API_KEY"); key != "" {
		return header{"x-api-key", key}, nil
	}
	user, password := os.Getenv("STRATOPT_USERNAME"), os.Getenv("STRATOPT_PASSWORD")
	if user == "" || password == "" {
		return header{}, errNoCredentials
	}
	reply, err := stratoptv1.NewAuthServiceClient(conn).Login(ctx, &stratoptv1.LoginRequest{
		Username: user,
		Password: password,
	})
	if err != nil {
		return header{}, err
	}
	return bearer(reply.GetAccessToken()), nil
}

func bearer(token string) header {
	return header{"authorization", "Bearer " + token}
}

// hasCredentials reports whether authenticate has something to work with.
func hasCredentials() bool {
	return os.Getenv("STRATOPT_TOKEN") != "" || os.Getenv("STRATOPT_API_KEY") != "" ||
		(os.Getenv("STRATOPT_USERNAME") != "" && os.Getenv("STRATOPT_PASSWORD") != "")
}
