// Credentials from the environment, attached to every call by an interceptor.

import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { AuthService } from "@stratopt/api/stratopt/v1/auth_pb";

/** A request header that authenticates the caller, e.g. ["authorization", "Bearer ..."]. */
export type AuthHeader = readonly [name: string, value: string];

export class MissingCredentialsError extends Error {
  constructor() {
    super("set STRATOPT_TOKEN, STRATOPT_API_KEY or STRATOPT_USERNAME and STRATOPT_PASSWORD");
  }
}

/** Whether authHeaderFromEnv has something to work with. */
export function hasCredentials(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(
    env.STRATOPT_TOKEN || env.STRATOPT_API_KEY || (env.STRATOPT_USERNAME && env.STRATOPT_PASSWORD),
  );
}

/**
 * The caller's credential, first match wins: STRATOPT_TOKEN (a bearer token),
 * STRATOPT_API_KEY (sent as x-api-key), or STRATOPT_USERNAME and STRATOPT_PASSWORD exchanged
 * for a token with AuthService.Login over `transport`.
 */
export async function authHeaderFromEnv(
  transport: Transport,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AuthHeader> {
  if (env.STRATOPT_TOKEN) {
    return ["authorization", `Bearer ${env.STRATOPT_TOKEN}`];
  }
  if (env.STRATOPT_API_KEY) {
    return ["x-api-key", env.STRATOPT_API_KEY];
  }
  if (env.STRATOPT_USERNAME && env.STRATOPT_PASSWORD) {
    const auth = createClient(AuthService, transport);
    const reply = await auth.login({ username: env.STRATOPT_USERNAME, password: env.STRATOPT_PASSWORD });
    return ["authorization", `Bearer ${reply.accessToken}`];
  }
  throw new MissingCredentialsError();
}

/** Adds the header to every request made through a transport. */
export function authInterceptor([name, value]: AuthHeader): Interceptor {
  return (next) => (req) => {
    req.header.set(name, value);
    return next(req);
  };
}
