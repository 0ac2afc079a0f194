// Connecting to stratopt: plain gRPC over HTTP/2, straight to the Python server.

import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { StrategyService } from "@stratopt/api/stratopt/v1/strategy_pb";
import { authHeaderFromEnv, authInterceptor, type AuthHeader } from "./auth.ts";

export const DEFAULT_SERVER = "127.0.0.1:50051";

/** STRATOPT_SERVER as a URL; a bare host:port means plaintext HTTP/2 (h2c). */
export function serverUrl(env: NodeJS.ProcessEnv = process.env): string {
  const server = env.STRATOPT_SERVER || DEFAULT_SERVER;
  return /^https?:\/\//.test(server) ? server : `http://${server}`;
}

export function transport(interceptors: Interceptor[] = []): Transport {
  return createGrpcTransport({ baseUrl: serverUrl(), interceptors });
}

let credential: Promise<AuthHeader> | undefined;

/**
 * The credential from the environment, found once per process: with a username and password
 * that is one login, whose token every client reuses (a login per client or per test would
 * run into the server's login rate limit).
 */
export function sharedAuthHeader(): Promise<AuthHeader> {
  credential ??= authHeaderFromEnv(transport()).catch((e: unknown) => {
    credential = undefined;
    throw e;
  });
  return credential;
}

/** A StrategyService client whose every call carries the credential from the environment. */
export async function strategyClient(): Promise<Client<typeof StrategyService>> {
  const header = await sharedAuthHeader();
  return createClient(StrategyService, transport([authInterceptor(header)]));
}
